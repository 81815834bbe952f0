package image

import (
	"context"
	"io"
	"sync"
)

// streamChunks reads one stream into whole chunks on a goroutine of its
// own and hands them on as parallelReader does. The socket's reads (a
// copy out of the kernel for every byte) then run beside the hash, in
// large reads, instead of on the hash's goroutine, whose one core bounds
// the whole download.
type streamChunks struct {
	r      *resumingReader
	cancel context.CancelFunc
	ch     chan rangeResult
	free   chan []byte
	wg     sync.WaitGroup
	err    error
	cursor chunkCursor
}

// streamChunkBufs is how many chunks a single stream may read ahead of
// the writers: as many as a parallel download holds.
const streamChunkBufs = DefaultParallel + 2

// newStreamChunks reads r, whose requests run under ctx; cancel (ctx's)
// is how Close stops a read in progress.
func newStreamChunks(ctx context.Context, cancel context.CancelFunc, r *resumingReader) *streamChunks {
	// ch has room for every buffer and an error: the goroutine never
	// blocks on it, so cancel always ends it.
	s := &streamChunks{r: r, cancel: cancel, ch: make(chan rangeResult, streamChunkBufs+1), free: make(chan []byte, streamChunkBufs)}
	for range streamChunkBufs {
		s.free <- nil // allocated when first needed: a small image needs few
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.ch)
		for {
			var buf []byte
			select {
			case buf = <-s.free:
			case <-ctx.Done():
				return
			}
			if buf == nil {
				buf = alignedBuf(rangeChunk)
			}
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				s.ch <- rangeResult{buf: buf[:n]}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return // a short stream is caught by the caller's size check
			}
			if err != nil {
				s.ch <- rangeResult{err: err}
				return
			}
		}
	}()
	return s
}

func (s *streamChunks) nextChunk() ([]byte, func(), error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	res, ok := <-s.ch
	if !ok {
		s.err = io.EOF
		return nil, nil, io.EOF
	}
	if res.err != nil {
		s.err = res.err
		return nil, nil, res.err
	}
	buf := res.buf
	return buf, func() { s.free <- buf[:cap(buf)] }, nil
}

func (s *streamChunks) Read(b []byte) (int, error) { return s.cursor.read(b, s.nextChunk) }

func (s *streamChunks) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.r.Close()
}

// progress is only for after nextChunk returned io.EOF: the reading
// goroutine has ended then.
func (s *streamChunks) progress() (int64, int64) { return s.r.offset, s.r.size }
func (s *streamChunks) total() int64             { return s.r.openSize }

// chunkCursor serves Read from chunks taken one at a time.
type chunkCursor struct {
	cur     []byte
	release func()
}

func (c *chunkCursor) read(b []byte, next func() ([]byte, func(), error)) (int, error) {
	for len(c.cur) == 0 {
		if c.release != nil {
			c.release()
			c.release = nil
		}
		buf, release, err := next()
		if err != nil {
			return 0, err
		}
		c.cur, c.release = buf, release
	}
	n := copy(b, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}
