package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// RangeSource serves byte ranges of an image: a source that can, gets
// large images fetched with several requests at once, which a server or
// proxy that limits each connection's rate serves faster.
type RangeSource interface {
	Source
	// OpenRange returns exactly bytes [off, off+n); errNoRanges when the
	// server ignores Range.
	OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error)
}

var errNoRanges = errors.New("server does not serve byte ranges")

// parseContentRange reads a 206 answer's "bytes first-last/complete"
// (RFC 9110 section 14.4); complete is -1 when the server sends "*".
// Anything else, including a range past the complete length, is an
// error: a resumed download must know exactly which bytes it gets.
func parseContentRange(v string) (first, last, complete int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", v)
	}
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad()
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 18 || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first, ok = num(a); !ok {
		return bad()
	}
	if last, ok = num(b); !ok || last < first {
		return bad()
	}
	complete = -1
	if total != "*" {
		if complete, ok = num(total); !ok || last >= complete {
			return bad()
		}
	}
	return first, last, complete, nil
}

// OpenRange GETs bytes [off, off+n) and insists on a 206 for them.
func (s *HTTPSource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	s.authorize(req)
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, end, _, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != off || end != off+n-1 {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: Content-Range %q does not answer bytes %d-%d", s.URL, resp.Header.Get("Content-Range"), off, off+n-1)
		}
		return resp.Body, nil
	case http.StatusOK:
		resp.Body.Close()
		return nil, errNoRanges
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &HTTPStatusError{URL: s.URL, Status: resp.StatusCode}
	}
}

// Parallel download defaults: requests in flight, the bytes each asks
// for, and the chunk they are read into. Memory is bounded by
// (parallel + 2) x rangeChunk whatever the request size: the chunks
// being filled, the one being read, and one ready behind it. A request
// spans several chunks because each request costs the server and the
// client more than the bytes it carries; while its next chunk waits for a
// free buffer, its bytes wait in the kernel's socket buffer.
const (
	DefaultParallel = 4
	rangeRequest    = 16 << 20
	rangeChunk      = 4 << 20
	// parallelMin is the smallest image worth parallel requests.
	parallelMin = 64 << 20
)

type rangeResult struct {
	buf []byte
	err error
}

// rangePiece is one chunk of a request: its bytes and where the reader
// waits for them.
type rangePiece struct {
	off  int64 // from the request's first byte
	slot chan rangeResult
}

// parallelReader reads [0, size) of a RangeSource with up to `parallel`
// concurrent requests, each for rangeRequest bytes read into rangeChunk
// buffers, handing the chunks out in order (the hash runs over the bytes
// in order). Buffers go to chunks in offset order, so the earliest chunk
// not yet read always has one and its request is reading it: no request
// can starve the one the reader waits for. A dropped request resumes
// from the byte it reached.
type parallelReader struct {
	ctx     context.Context
	cancel  context.CancelFunc
	src     RangeSource
	size    int64
	retry   Retry
	onRetry func(error)

	slots   chan chan rangeResult // in order of offset
	cursor  chunkCursor
	curErr  error
	offset  int64
	wg      sync.WaitGroup
	pool    sync.Pool
	release chan struct{} // one token per buffer that may be allocated
}

func newParallelReader(ctx context.Context, src RangeSource, size int64, parallel int, retry Retry, onRetry func(error)) *parallelReader {
	ctx, cancel := context.WithCancel(ctx)
	p := &parallelReader{ctx: ctx, cancel: cancel, src: src, size: size, retry: retry, onRetry: onRetry,
		slots: make(chan chan rangeResult, parallel+2), release: make(chan struct{}, parallel+2)}
	p.pool.New = func() any { b := alignedBuf(rangeChunk); return &b }
	for i := 0; i < parallel+2; i++ {
		p.release <- struct{}{}
	}
	// Requests open ahead of the buffers, up to parallel at once; their
	// pieces get buffers strictly in order.
	requests := make(chan chan rangePiece, parallel)
	sem := make(chan struct{}, parallel)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		defer close(requests)
		for off := int64(0); off < size; off += rangeRequest {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			n := min(int64(rangeRequest), size-off)
			pieces := make(chan rangePiece, (n+rangeChunk-1)/rangeChunk)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer func() { <-sem }()
				p.fetch(off, n, pieces)
			}()
			select {
			case requests <- pieces:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		defer close(p.slots)
		for pieces := range requests {
			for k := 0; k < cap(pieces); k++ {
				select {
				case <-p.release: // a buffer is free: bounded memory
				case <-ctx.Done():
					close(pieces)
					return
				}
				slot := make(chan rangeResult, 1)
				select {
				case p.slots <- slot:
				case <-ctx.Done():
					close(pieces)
					return
				}
				pieces <- rangePiece{off: int64(k) * rangeChunk, slot: slot} // room for every piece
			}
			close(pieces)
		}
	}()
	return p
}

// fetch reads bytes [off, off+n) with one request, into a buffer per
// piece as pieces arrive, reopening the request from the byte it reached
// when it fails (retrying as the sequential reader does: at once after
// an attempt that brought bytes, after a back-off otherwise). Once a piece has
// failed, the reader stops at it, and the later ones are never read.
func (p *parallelReader) fetch(off, n int64, pieces chan rangePiece) {
	var body io.ReadCloser
	defer func() {
		if body != nil {
			body.Close()
		}
	}()
	open := func(at int64) error {
		if body != nil {
			body.Close()
			body = nil
		}
		b, err := p.src.OpenRange(p.ctx, at, off+n-at)
		if err == nil {
			body = b
		}
		return err
	}
	// Open at once: the server starts sending while the pieces wait
	// for buffers.
	openErr := open(off)
	// One retry count for the request: it starts again whenever an
	// attempt brought bytes.
	r := &resumingReader{ctx: p.ctx, src: p.src, retry: p.retry, onRetry: p.onRetry, failedAt: off}
	var failed error
	for {
		var pc rangePiece
		var ok bool
		select {
		case pc, ok = <-pieces:
		case <-p.ctx.Done():
			return
		}
		if !ok {
			return
		}
		if failed != nil { // answered, though the reader stops at the first
			pc.slot <- rangeResult{err: failed}
			continue
		}
		start := off + pc.off
		buf := (*p.pool.Get().(*[]byte))[:min(int64(rangeChunk), off+n-start)]
		got, err := 0, openErr
		openErr = nil
		for {
			if err == nil {
				var k int
				k, err = io.ReadFull(body, buf[got:])
				got += k
				if err == nil {
					break
				}
			}
			if errors.Is(err, errNoRanges) {
				break
			}
			if berr := r.backoff(err, r.progressed(start+int64(got))); berr != nil {
				err = fmt.Errorf("bytes %d-%d: %w", start+int64(got), off+n-1, berr)
				break
			}
			err = open(start + int64(got))
		}
		pc.slot <- rangeResult{buf, err}
		failed = err
	}
}

func (p *parallelReader) Read(b []byte) (int, error) { return p.cursor.read(b, p.nextChunk) }

// nextChunk hands over the next whole chunk as fetched, without a copy:
// release gives its buffer back (and lets another fetch start). It must
// not be mixed with Read.
func (p *parallelReader) nextChunk() ([]byte, func(), error) {
	if p.curErr != nil {
		return nil, nil, p.curErr
	}
	slot, ok := <-p.slots
	if !ok {
		if p.offset == p.size {
			return nil, nil, io.EOF
		}
		if err := p.ctx.Err(); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("parallel download ended at byte %d of %d", p.offset, p.size)
	}
	var res rangeResult
	select {
	case res = <-slot:
	case <-p.ctx.Done():
		return nil, nil, p.ctx.Err()
	}
	if res.err != nil {
		p.curErr = res.err
		return nil, nil, res.err
	}
	p.offset += int64(len(res.buf))
	buf := res.buf
	return buf, func() {
		full := buf[:cap(buf)]
		p.pool.Put(&full)
		p.release <- struct{}{}
	}, nil
}

// Close stops every request; none of the goroutines blocks on anything
// but the context once it is cancelled.
func (p *parallelReader) Close() error {
	p.cancel()
	p.wg.Wait()
	return nil
}

// download is the byte stream writeOne hashes: one resuming stream, or
// parallel ranges, read ahead in chunks by goroutines of its own.
type download interface {
	io.ReadCloser
	// nextChunk hands over the next chunk in order, in place: release
	// gives its buffer back for another read. It must not be mixed
	// with Read.
	nextChunk() (b []byte, release func(), err error)
	// progress is the bytes read and the size (-1: unknown); only for
	// after the reading goroutine ended.
	progress() (offset, size int64)
	// total is the size known when the download opened (-1: unknown).
	total() int64
}

func (p *parallelReader) progress() (int64, int64) { return p.offset, p.size }
func (p *parallelReader) total() int64             { return p.size }

// openDownload opens src, with parallel range requests when the image
// is large, the source serves ranges (checked with a one-byte request)
// and parallel > 1.
func openDownload(ctx context.Context, src Source, parallel int, retry Retry, onRetry func(error), log func(msg string, args ...any)) (download, error) {
	// The single stream's requests get a context of their own, so Close
	// can stop a read in progress on its goroutine.
	sctx, scancel := context.WithCancel(ctx)
	rr, err := newResumingReader(sctx, src, retry, onRetry)
	if err != nil {
		scancel()
		return nil, err
	}
	rs, ok := src.(RangeSource)
	if parallel == 0 {
		parallel = DefaultParallel
	}
	if !ok || parallel < 2 || rr.size < parallelMin {
		return newStreamChunks(sctx, scancel, rr), nil
	}
	probe, err := rs.OpenRange(ctx, 0, 1)
	if err != nil {
		log("image server does not serve ranges; one stream", "url", src.String(), "error", err)
		return newStreamChunks(sctx, scancel, rr), nil
	}
	probe.Close()
	size := rr.size
	rr.Close()
	scancel()
	log("downloading with parallel range requests", "url", src.String(), "requests", parallel, "chunk_bytes", rangeChunk)
	return newParallelReader(ctx, rs, size, parallel, retry, onRetry), nil
}
