package testutil

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer that may be written from several
// goroutines while a test reads it: a child process's output, a logger
// whose batches a timer writes.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
