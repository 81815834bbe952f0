package image

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// bufPipe hands filled buffers from a producer to a reader through a
// bounded queue, so the producer (download and hash) runs ahead of the
// consumer (decompress and write) instead of waiting for every read as
// io.Pipe makes it. Memory is bounded by the number of buffers.
type bufPipe struct {
	full chan []byte
	free chan []byte
	done chan struct{} // closed when the reader gives up

	mu   sync.Mutex
	werr error // the producer's error, io.EOF at the end

	cur, orig []byte
	once      sync.Once
	waited    atomic.Int64 // nanoseconds Read spent waiting for the producer
}

func newBufPipe(n, size int) *bufPipe {
	p := &bufPipe{full: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{})}
	for i := 0; i < n; i++ {
		p.free <- make([]byte, size)
	}
	return p
}

var errReaderClosed = errors.New("image pipeline closed")

// buffer returns an empty buffer for the producer to fill.
func (p *bufPipe) buffer() ([]byte, error) {
	select {
	case b := <-p.free:
		return b[:cap(b)], nil
	case <-p.done:
		return nil, errReaderClosed
	}
}

// send queues a filled buffer.
func (p *bufPipe) send(b []byte) error {
	select {
	case p.full <- b:
		return nil
	case <-p.done:
		return errReaderClosed
	}
}

// closeWrite ends the stream with err (io.EOF for a clean end).
func (p *bufPipe) closeWrite(err error) {
	p.mu.Lock()
	p.werr = err
	p.mu.Unlock()
	close(p.full)
}

func (p *bufPipe) Read(b []byte) (int, error) {
	if len(p.cur) == 0 {
		if p.orig != nil {
			p.free <- p.orig
			p.orig = nil
		}
		var next []byte
		var ok bool
		select {
		case next, ok = <-p.full:
		default:
			t := time.Now()
			next, ok = <-p.full
			p.waited.Add(int64(time.Since(t)))
		}
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return 0, p.werr
		}
		p.cur, p.orig = next, next
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// closeRead tells the producer to stop.
func (p *bufPipe) closeRead() { p.once.Do(func() { close(p.done) }) }
