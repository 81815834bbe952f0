// Package logring keeps the newest part of a program's own log in memory,
// cut at line boundaries, for a program that must hand its log over on
// request where there is no journal to ask (the agent's log bundle on a
// ramdisk).
package logring

import (
	"sync"
)

// Buffer is an io.Writer that keeps at most a fixed number of bytes: the
// newest whole lines written to it. It is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// New returns a Buffer that keeps at most max bytes.
func New(max int) *Buffer { return &Buffer{max: max} }

// Write appends p, dropping the oldest whole lines past the limit (a
// line longer than the limit is dropped whole, never kept in part).
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		cut := over
		for cut < len(b.buf) && b.buf[cut-1] != '\n' {
			cut++
		}
		b.buf = append(b.buf[:0:0], b.buf[cut:]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what is kept.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
