package image

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// directAlign is what O_DIRECT needs of a buffer's address and length
// (the largest logical block size).
const directAlign = 4096

// alignedBuf returns n bytes starting at a directAlign-aligned address,
// so they can be written with O_DIRECT as they are.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

func aligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

// bufPipe hands filled buffers from a producer to a reader through a
// bounded queue, so the producer (download and hash) runs ahead of the
// consumer (decompress and write) instead of waiting for every read as
// io.Pipe makes it. Memory is bounded by the number of buffers. A
// consumer that needs no decoding takes whole buffers (next) and gives
// them back once written (release): the downloaded bytes go to the
// device without another copy.
type bufPipe struct {
	full chan pipeBuf
	done chan struct{} // closed when the reader gives up

	mu   sync.Mutex
	werr error // the producer's error, io.EOF at the end

	cur     []byte // unread part of head.b
	head    pipeBuf
	hasHead bool
	once    sync.Once
	waited  atomic.Int64 // nanoseconds Read spent waiting for the producer
}

// pipeBuf is a filled buffer and the mask of its all-zero sparseBlock
// blocks (when hasMask), found while the producer had the bytes in its
// cache. release gives the buffer back to the download that lent it.
type pipeBuf struct {
	b       []byte
	zmask   uint64
	hasMask bool
	release func()
	// refs counts the holders of a buffer parts of which were lent out
	// by borrow (the pipe itself is one); nil when none were.
	refs *atomic.Int32
}

// newBufPipe makes a pipe that queues up to n buffers; the producer
// lends them and bounds how many exist.
func newBufPipe(n int) *bufPipe {
	return &bufPipe{full: make(chan pipeBuf, n), done: make(chan struct{})}
}

var errReaderClosed = errors.New("image pipeline closed")

// send queues a filled buffer.
func (p *bufPipe) send(pb pipeBuf) error {
	select {
	case p.full <- pb:
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

// fill makes the next buffer current; false at the end of the stream.
func (p *bufPipe) fill() bool {
	if p.hasHead {
		return true
	}
	var next pipeBuf
	var ok bool
	select {
	case next, ok = <-p.full:
	default:
		t := time.Now()
		next, ok = <-p.full
		p.waited.Add(int64(time.Since(t)))
	}
	if !ok {
		return false
	}
	p.head, p.cur, p.hasHead = next, next.b, true
	return true
}

func (p *bufPipe) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// peek returns the start of the stream without consuming it (fewer
// bytes than n only at its end).
func (p *bufPipe) peek(n int) []byte {
	if !p.fill() {
		return nil
	}
	return p.cur[:min(n, len(p.cur))]
}

func (p *bufPipe) Read(b []byte) (int, error) {
	p.dropSpent()
	if !p.fill() {
		return 0, p.err()
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// dropSpent lets go of the current buffer once it has been read to the
// end; it goes back to its owner when the last borrowed part of it has
// been released too.
func (p *bufPipe) dropSpent() {
	if p.hasHead && len(p.cur) == 0 {
		p.hasHead = false
		if p.head.refs == nil || p.head.refs.Add(-1) == 0 {
			p.head.release()
		}
	}
}

// avail returns how many bytes the current buffer still holds, waiting
// for the next one if it is spent (0 at the end of the stream).
func (p *bufPipe) avail() int {
	p.dropSpent()
	if !p.fill() {
		return 0
	}
	return len(p.cur)
}

// borrow consumes the next n bytes (n <= avail()) without copying them:
// the caller gets them in place, in the buffer the producer filled, and
// calls release once they are written. The buffer is reused only after
// every part lent out is released and the pipe has read past it.
func (p *bufPipe) borrow(n int) (b []byte, release func()) {
	if p.head.refs == nil {
		p.head.refs = new(atomic.Int32)
		p.head.refs.Store(1) // the pipe's own hold, dropped by dropSpent
	}
	p.head.refs.Add(1)
	b, p.cur = p.cur[:n:n], p.cur[n:]
	head := p.head
	return b, func() {
		if head.refs.Add(-1) == 0 {
			head.release()
		}
	}
}

// next hands the next whole buffer to the caller, who gives it back with
// release. It must not be mixed with Read past a peek.
func (p *bufPipe) next() (pipeBuf, error) {
	if !p.fill() {
		return pipeBuf{}, p.err()
	}
	p.hasHead = false
	return p.head, nil
}

// closeRead tells the producer to stop.
func (p *bufPipe) closeRead() { p.once.Do(func() { close(p.done) }) }
