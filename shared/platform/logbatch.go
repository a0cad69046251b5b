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
// written in batches, at most logBatchDelay after they were logged or when
// logBatchSize has gathered, and a warning or worse is written at once with
// everything before it. Why: a server logs a line per request, and a write
// per line was a system call per request (5% of Connect's CPU serving an
// app, and each one woke the Go runtime's monitor thread). flush writes
// what is left; call it before the process exits.
func NewServerLogger(s config.Shared, w io.Writer) (log *slog.Logger, flush func()) {
	bw := &batchWriter{w: w}
	inner := NewLogger(s, bw).Handler()
	return slog.New(flushingHandler{Handler: inner, w: bw}), bw.Flush
}

const (
	logBatchDelay = 100 * time.Millisecond
	logBatchSize  = 32 << 10
)

// batchWriter gathers writes (slog writes each record whole) and passes
// them on in batches.
type batchWriter struct {
	w     io.Writer
	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // armed while buf holds something
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= logBatchSize {
		b.flushLocked()
	} else if b.timer == nil {
		b.timer = time.AfterFunc(logBatchDelay, b.Flush)
	}
	return len(p), nil
}

// Flush writes what has gathered.
func (b *batchWriter) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *batchWriter) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf) // nowhere to report a failing log
	if cap(b.buf) > 4*logBatchSize {
		b.buf = nil // a burst's buffer is not kept
	} else {
		b.buf = b.buf[:0]
	}
}

// flushingHandler writes a warning or worse, and what was logged before
// it, at once.
type flushingHandler struct {
	slog.Handler
	w *batchWriter
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
