package image

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

// devWriter is the one write pipeline every format goes through: pieces
// of the disk image (whole buffers, or extents batched into large aligned
// buffers) are written by rawWriters goroutines at once, through an
// O_DIRECT descriptor where the device takes one, all-zero blocks become
// a zeroing offload, and the image's first MiB is kept in memory until
// the caller has verified everything else.
//
// Concurrency is safe because every 4 KiB block of the device belongs to
// one job: jobs never overlap, and a block only partly covered by a job
// (an unaligned edge, which a neighbouring job may share) is only ever
// written through the page cache, whose per-page lock makes concurrent
// writes to different bytes of it safe. Blocks a job covers whole go
// direct or to the offload; mixing those with page-cache writes of the
// same block could let a stale cached page overwrite them.
type devWriter struct {
	ctx         context.Context
	fail        func(error)
	f, direct   *os.File
	dev         string
	knownZeroed bool
	prog        *Progress

	held []byte // the image's first holdBack bytes
	jobs chan wjob

	// pool bounds the buffers devWriter itself allocates (for batching
	// extents and for decompressed chunks): at most poolSize of them.
	pool      chan []byte
	allocated int
	writers   sync.WaitGroup

	// The batch being filled with contiguous extents: buf[skip:skip+n]
	// holds guest bytes [at, at+n). skip is at%directAlign, so the
	// buffer's aligned addresses meet the device's aligned offsets.
	buf     []byte
	bufAt   int64
	bufSkip int
	bufN    int

	zeroAt, zeroN int64 // a pending run of zeros, merged until it breaks
}

// wjob is one piece for a writer: data at at, or zeros bytes of zeros.
type wjob struct {
	data  []byte
	at    int64
	zeros int64
	// zmask says which sparseBlock blocks of data are all zero (bit i:
	// block i), when hasMask; found by the producer while the bytes
	// were in its cache, so the writer need not read them again.
	zmask   uint64
	hasMask bool
	release func()
}

const (
	// chunkSize is the unit of reading, hashing and writing: large enough
	// that a direct write costs little per byte, small enough that a
	// pool of them stays far under the 128 MiB bound.
	chunkSize = 2 << 20
	// poolSize is how many chunks devWriter allocates: one per writer,
	// one being filled and one queued.
	poolSize = rawWriters + 2
	// maxZeroJob splits long zero runs so several writers share them.
	maxZeroJob = 256 << 20
)

func newDevWriter(ctx context.Context, fail func(error), f *os.File, req Request) *devWriter {
	w := &devWriter{ctx: ctx, fail: fail, f: f, direct: f, dev: req.Device, knownZeroed: req.KnownZeroed, prog: req.Progress,
		held: make([]byte, holdBack), jobs: make(chan wjob, rawWriters), pool: make(chan []byte, poolSize)}
	if d, err := os.OpenFile(req.Device, os.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0); err == nil {
		w.direct = d
	}
	for i := 0; i < rawWriters; i++ {
		w.writers.Add(1)
		go func() {
			defer w.writers.Done()
			for j := range w.jobs {
				if w.ctx.Err() == nil {
					t := time.Now()
					err := w.do(j)
					w.prog.WriteNanos.Add(int64(time.Since(t)))
					if err != nil {
						w.fail(fmt.Errorf("writing %s at %d: %w", w.dev, j.at, err))
					}
				}
				if j.release != nil {
					j.release()
				}
			}
		}()
	}
	return w
}

// getBuf returns an aligned chunk from the pool, allocating up to
// poolSize of them; it waits for a writer to free one beyond that.
func (w *devWriter) getBuf() ([]byte, error) {
	select {
	case b := <-w.pool:
		return b, nil
	default:
	}
	if w.allocated < poolSize {
		w.allocated++
		return alignedChunk(), nil
	}
	select {
	case b := <-w.pool:
		return b, nil
	case <-w.ctx.Done():
		return nil, context.Cause(w.ctx)
	}
}

func (w *devWriter) putBuf(b []byte) { w.pool <- b[:cap(b)] }

// submit queues data for the writers; the part below holdBack is copied
// aside instead. release runs once the bytes are no longer needed.
func (w *devWriter) submit(j wjob) error {
	if j.zeros > 0 {
		if j.at < holdBack { // the first MiB is zeroed already and held as zeros
			k := min(j.zeros, holdBack-j.at)
			j.at, j.zeros = j.at+k, j.zeros-k
		}
		if j.zeros == 0 || w.knownZeroed {
			return nil
		}
	} else if j.at < holdBack {
		k := min(int64(len(j.data)), holdBack-j.at)
		copy(w.held[j.at:], j.data[:k])
		w.prog.Written.Add(k)
		if k%sparseBlock == 0 {
			j.zmask >>= k / sparseBlock
		} else {
			j.hasMask = false
		}
		j.data, j.at = j.data[k:], j.at+k
		if len(j.data) == 0 {
			if j.release != nil {
				j.release()
			}
			return nil
		}
	}
	select {
	case w.jobs <- j:
		return nil
	case <-w.ctx.Done():
		if j.release != nil {
			j.release()
		}
		return context.Cause(w.ctx)
	}
}

// do writes one job: unaligned edges through the page cache, the
// aligned middle direct (all-zero blocks by the offload).
func (w *devWriter) do(j wjob) error {
	if j.zeros > 0 {
		return w.zeroRange(j.at, j.zeros)
	}
	data, at := j.data, j.at
	if head := int((directAlign - at%directAlign) % directAlign); head > 0 {
		head = min(head, len(data))
		if _, err := w.f.WriteAt(data[:head], at); err != nil {
			return err
		}
		w.prog.Written.Add(int64(head))
		data, at, j.hasMask = data[head:], at+int64(head), false
	}
	mid := len(data) &^ (directAlign - 1)
	if mid > 0 {
		out := w.direct
		if !aligned(data) {
			out = w.f // whole blocks of this job alone: safe through the cache
		}
		if err := writeSparse(out, w.f, data[:mid], at, w.knownZeroed, j.zmask, j.hasMask); err != nil {
			return err
		}
		w.prog.Written.Add(int64(mid))
	}
	if tail := data[mid:]; len(tail) > 0 {
		if _, err := w.f.WriteAt(tail, at+int64(mid)); err != nil {
			return err
		}
		w.prog.Written.Add(int64(len(tail)))
	}
	return nil
}

// zeroRange zeroes [at, at+n): whole blocks by the offload, partial
// blocks at the edges with zero writes through the page cache.
func (w *devWriter) zeroRange(at, n int64) error {
	end := at + n
	lo := (at + directAlign - 1) &^ (directAlign - 1)
	hi := end &^ (directAlign - 1)
	if lo >= hi {
		_, err := w.f.WriteAt(make([]byte, n), at)
		return err
	}
	if lo > at {
		if _, err := w.f.WriteAt(make([]byte, lo-at), at); err != nil {
			return err
		}
	}
	if err := disk.ZeroRange(w.f, lo, hi-lo); err != nil {
		return err
	}
	if end > hi {
		_, err := w.f.WriteAt(make([]byte, end-hi), hi)
		return err
	}
	return nil
}

// The extent sink the qcow2 decoder feeds (qcow2Sink).

// buffer returns n bytes of batch for guest offset off: the decoder
// reads the cluster straight into it, then commits it.
func (w *devWriter) buffer(off int64, n int) ([]byte, error) {
	if w.buf != nil && (off != w.bufAt+int64(w.bufN) || w.bufSkip+w.bufN+n > len(w.buf)) {
		if err := w.flushBatch(); err != nil {
			return nil, err
		}
	}
	if w.buf == nil {
		skip := int(off % directAlign)
		if skip+n > chunkSize {
			return make([]byte, n), nil // larger than a chunk: commit copies it in pieces
		}
		b, err := w.getBuf()
		if err != nil {
			return nil, err
		}
		w.buf, w.bufAt, w.bufSkip, w.bufN = b, off, skip, 0
	}
	s := w.bufSkip + w.bufN
	return w.buf[s : s+n : s+n], nil
}

// commit takes the bytes buffer returned, now filled.
func (w *devWriter) commit(off int64, b []byte) error {
	if s := w.bufSkip + w.bufN; w.buf != nil && off == w.bufAt+int64(w.bufN) && len(b) > 0 && s < len(w.buf) && &b[0] == &w.buf[s] {
		w.bufN += len(b)
		return nil
	}
	// Not in the batch (too large for one): copy it in, chunk by chunk.
	for len(b) > 0 {
		k := min(len(b), chunkSize/2)
		dst, err := w.buffer(off, k)
		if err != nil {
			return err
		}
		copy(dst, b[:k])
		w.bufN += k
		b, off = b[k:], off+int64(k)
	}
	return nil
}

// submitBorrowed queues bytes the decoder lends in place (a run of data
// clusters in a downloaded buffer) as one job of their own; release
// gives them back once written.
func (w *devWriter) submitBorrowed(off int64, b []byte, release func()) error {
	return w.submit(wjob{data: b, at: off, release: release})
}

func (w *devWriter) flushBatch() error {
	if w.buf == nil {
		return nil
	}
	b := w.buf
	j := wjob{data: b[w.bufSkip : w.bufSkip+w.bufN], at: w.bufAt, release: func() { w.putBuf(b) }}
	w.buf = nil
	if w.bufN == 0 {
		w.putBuf(b)
		return nil
	}
	return w.submit(j)
}

// zero records that guest bytes [off, off+n) read as zeros; contiguous
// runs are merged into one offload.
func (w *devWriter) zero(off, n int64) error {
	if w.zeroN > 0 && off == w.zeroAt+w.zeroN && w.zeroN+n <= maxZeroJob {
		w.zeroN += n
		return nil
	}
	if err := w.flushZero(); err != nil {
		return err
	}
	w.zeroAt, w.zeroN = off, n
	return nil
}

func (w *devWriter) flushZero() error {
	if w.zeroN == 0 {
		return nil
	}
	j := wjob{at: w.zeroAt, zeros: w.zeroN}
	w.zeroN = 0
	return w.submit(j)
}

// close flushes what is pending and waits for the writers. The held
// first MiB is left for the caller.
func (w *devWriter) close() {
	if w.ctx.Err() == nil {
		if err := w.flushBatch(); err != nil {
			w.fail(err)
		}
		if err := w.flushZero(); err != nil {
			w.fail(err)
		}
	}
	close(w.jobs)
	w.writers.Wait()
	if w.direct != w.f {
		w.direct.Close()
	}
}

// rawWriters write chunks at once.
const rawWriters = 4

// alignedChunk returns a chunk buffer whose start is directAlign-aligned.
func alignedChunk() []byte { return alignedBuf(chunkSize) }

// sparseBlock is the unit of zero detection; a chunk has at most 64 of
// them, one bit each in a uint64 mask.
const sparseBlock = 64 << 10

// writeSparse writes data (4 KiB-aligned offset and length) at off,
// turning runs of all-zero blocks into a zeroing offload that guarantees
// zeros (BLKZEROOUT; zero writes where the device has none), or skipping
// them on a device known to be zeroed. A sparse image goes at the speed
// of its data and still leaves no old data behind. zf is the descriptor
// the offload goes through.
func writeSparse(out, zf *os.File, data []byte, off int64, knownZeroed bool, zmask uint64, hasMask bool) error {
	blockZero := func(i int) bool {
		if hasMask {
			return zmask&(1<<(i/sparseBlock)) != 0
		}
		return isZero(data[i:min(len(data), i+sparseBlock)])
	}
	for i := 0; i < len(data); {
		zero := blockZero(i)
		n := min(len(data), i+sparseBlock)
		for n < len(data) && blockZero(n) == zero {
			n = min(len(data), n+sparseBlock)
		}
		switch {
		case !zero:
			if _, err := out.WriteAt(data[i:n], off+int64(i)); err != nil {
				return err
			}
		case knownZeroed:
		default:
			if err := disk.ZeroRange(zf, off+int64(i), int64(n-i)); err != nil {
				return err
			}
		}
		i = n
	}
	return nil
}

// isZero reads eight words at a time and stops at the first non-zero
// one, which in data is almost always the first.
func isZero(b []byte) bool {
	le := binary.LittleEndian
	for len(b) >= 64 {
		if le.Uint64(b)|le.Uint64(b[8:])|le.Uint64(b[16:])|le.Uint64(b[24:])|
			le.Uint64(b[32:])|le.Uint64(b[40:])|le.Uint64(b[48:])|le.Uint64(b[56:]) != 0 {
			return false
		}
		b = b[64:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
