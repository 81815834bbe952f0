package agent

import (
	"sync"
)

// LogBuffer keeps the newest part of the agent's own log in memory, for
// log.collect_system_logs: a ramdisk has no journal to ask.
type LogBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	drop int // bytes dropped from the front so far
}

// NewLogBuffer keeps at most max bytes.
func NewLogBuffer(max int) *LogBuffer { return &LogBuffer{max: max} }

// Write appends p, dropping the oldest whole lines past the limit.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		cut := over
		for cut < len(b.buf) && b.buf[cut-1] != '\n' {
			cut++
		}
		b.drop += cut
		b.buf = append(b.buf[:0:0], b.buf[cut:]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what is kept.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
