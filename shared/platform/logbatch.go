package platform

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/atrium-suite/atrium/shared/config"
)

// NewServerLogger is NewLogger for a long-running server: lines are
// written in batches (BatchWriter), and a warning or worse is written at once with
// everything before it. Why: a server logs a line per request, and a write
// per line was a system call per request (5% of Connect's CPU serving an
// app, and each one woke the Go runtime's monitor thread). flush writes
// what is left; call it before the process exits.
func NewServerLogger(s config.Shared, w io.Writer) (log *slog.Logger, flush func()) {
	bw := NewBatchWriter(w)
	inner := NewLogger(s, bw).Handler()
	return slog.New(flushingHandler{Handler: inner, w: bw}), bw.Flush
}

const (
	batchDelay = 100 * time.Millisecond
	batchSize  = 32 << 10
)

// BatchWriter gathers writes and passes them on to w in batches: at most
// batchDelay after the first of them, once batchSize have gathered, or on
// Flush. It is for what a server writes per request — its log, an app's
// output (connect's job logs) — where a write per line was a system call
// per request. A write is kept whole (slog writes each record whole).
type BatchWriter struct {
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // armed while buf holds something
	closed bool
}

// NewBatchWriter returns a BatchWriter in front of w.
func NewBatchWriter(w io.Writer) *BatchWriter { return &BatchWriter{w: w} }

// Write gathers p; it never fails (a failing w has nowhere to report to).
func (b *BatchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchSize || b.closed {
		b.flushLocked()
	} else if b.timer == nil {
		b.timer = time.AfterFunc(batchDelay, b.Flush)
	}
	return len(p), nil
}

// Flush writes what has gathered.
func (b *BatchWriter) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

// Close writes what has gathered; later writes go to w at once.
func (b *BatchWriter) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
}

func (b *BatchWriter) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf)
	if cap(b.buf) > 4*batchSize {
		b.buf = nil // a burst's buffer is not kept
	} else {
		b.buf = b.buf[:0]
	}
}

// flushingHandler writes a warning or worse, and what was logged before
// it, at once.
type flushingHandler struct {
	slog.Handler
	w *BatchWriter
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.w.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}
