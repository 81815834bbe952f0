package image

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

const (
	// holdBack is the part of the image written last: the partition
	// table and boot code live there, so until it is written the disk
	// does not boot.
	holdBack  = 1 << 20
	chunkSize = 4 << 20
	inFlight  = 8 // chunks between decompression and the writer: bounded memory
)

// TooLargeError says the image does not fit the device.
type TooLargeError struct {
	Device     string
	DeviceSize int64
	ImageSize  int64 // at least this much
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("image (at least %d bytes) does not fit %s (%d bytes)", e.ImageSize, e.Device, e.DeviceSize)
}

// Request is one image to write.
type Request struct {
	URLs     []string
	Checksum ChecksumSpec
	HTTP     HTTPOptions
	Retry    Retry
	Device   string
	// PermittedFormats are the disk formats allowed inside any
	// compression (Ironic's permitted_image_formats); empty allows raw.
	PermittedFormats []string
	MaxDuration      time.Duration // 0 = no limit
	// KnownZeroed says the device reads as zeros already (freshly
	// erased): all-zero blocks of the image are then skipped, not zeroed.
	KnownZeroed bool
	Progress    *Progress
	Log         *slog.Logger
}

// Result says what was written.
type Result struct {
	Device      string
	Source      string
	Downloaded  int64 // bytes as served (hashed)
	Written     int64 // bytes of disk image
	Algo        string
	Digest      string
	Compression string
	Format      string
	Duration    time.Duration
}

// Progress is read by whoever shows it while Write runs.
type Progress struct {
	Downloaded atomic.Int64
	Written    atomic.Int64
	Total      atomic.Int64 // download size if known, else 0
	started    atomic.Int64 // unix nanos
	Retries    atomic.Int64

	// Busy time of each stage, in nanoseconds, so an operator sees which
	// one bounds the write: download (waiting on the network), hash,
	// decompress (and qcow2 decoding, without waiting for the download),
	// write (to the device, syncs included).
	DownloadNanos, HashNanos, DecompressNanos, WriteNanos atomic.Int64
}

// Stages returns the busy seconds of each stage.
func (p *Progress) Stages() map[string]float64 {
	return map[string]float64{
		"download":   time.Duration(p.DownloadNanos.Load()).Seconds(),
		"hash":       time.Duration(p.HashNanos.Load()).Seconds(),
		"decompress": time.Duration(p.DecompressNanos.Load()).Seconds(),
		"write":      time.Duration(p.WriteNanos.Load()).Seconds(),
	}
}

// Snapshot renders the progress as JSON-friendly values: bytes, rate, ETA.
func (p *Progress) Snapshot() map[string]any {
	start := time.Unix(0, p.started.Load())
	el := time.Since(start).Seconds()
	down, total := p.Downloaded.Load(), p.Total.Load()
	m := map[string]any{"downloaded_bytes": down, "written_bytes": p.Written.Load(), "elapsed_s": el, "retries": p.Retries.Load(), "stage_seconds": p.Stages()}
	if el > 0 {
		rate := float64(down) / el
		m["download_rate_mib_s"] = rate / (1 << 20)
		if total > 0 {
			m["total_bytes"] = total
			if rate > 0 {
				m["eta_s"] = float64(total-down) / rate
			}
		}
	}
	return m
}

// Write downloads, verifies and writes the image to req.Device. On any
// failure the device's first and last MiB are zeroed, so it does not
// boot a half-written or unverified image.
func Write(ctx context.Context, req Request) (*Result, error) {
	if req.Log == nil {
		req.Log = slog.Default()
	}
	if req.Progress == nil {
		req.Progress = &Progress{}
	}
	req.Progress.started.Store(time.Now().UnixNano())
	if len(req.URLs) == 0 {
		return nil, errors.New("no image URL")
	}
	if req.MaxDuration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.MaxDuration)
		defer cancel()
	}
	if err := disk.CheckSafe(ctx, req.Device); err != nil {
		return nil, err
	}
	client, err := NewHTTPClient(req.HTTP)
	if err != nil {
		return nil, err
	}
	if req.Checksum.ImageURL == "" {
		req.Checksum.ImageURL = req.URLs[0]
	}
	sources := make([]Source, len(req.URLs))
	if strings.HasPrefix(req.URLs[0], "oci://") {
		// The blob's digest is the checksum when Ironic gives none.
		src, err := ResolveOCI(ctx, req.URLs[0], client, req.HTTP.Insecure)
		if err != nil {
			return nil, err
		}
		sources[0] = src
		if req.Checksum.OSHashValue == "" && req.Checksum.Checksum == "" {
			req.Checksum.OSHashAlgo, req.Checksum.OSHashValue = src.Digest.Algorithm, src.Digest.Hex
		}
	}
	sum, err := req.Checksum.Resolve(ctx, client)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(req.Device, os.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", req.Device, err)
	}
	defer f.Close()
	devSize, err := disk.DeviceSize(f)
	if err != nil {
		return nil, err
	}
	// Not bootable from here on until the end: the old boot sector goes first.
	if err := zeroAt(f, 0, min(holdBack, devSize)); err != nil {
		return nil, fmt.Errorf("zeroing the start of %s: %w", req.Device, err)
	}
	var lastErr error
	for i, u := range req.URLs {
		src := sources[i]
		if src == nil {
			if src, err = NewSource(u, client, req.HTTP); err != nil {
				lastErr = err
				continue
			}
		}
		res, err := writeOne(ctx, req, src, sum, f, devSize)
		if err == nil {
			res.Duration = time.Since(time.Unix(0, req.Progress.started.Load()))
			return res, nil
		}
		lastErr = err
		req.Log.Warn("image write failed", "url", u, "error", err)
		var tl *TooLargeError
		var cm *ChecksumMismatchError
		var uf *UnsupportedFormatError
		var fp *FormatNotPermittedError
		if errors.As(err, &tl) || errors.As(err, &cm) || errors.As(err, &uf) || errors.As(err, &fp) || ctx.Err() != nil {
			break // another mirror serves the same bytes
		}
	}
	scrub(f, devSize, req.Log)
	return nil, lastErr
}

// scrub leaves a failed target unbootable: first MiB (boot sector,
// primary GPT) and last MiB (backup GPT) zeroed.
func scrub(f *os.File, size int64, log *slog.Logger) {
	n := min(int64(holdBack), size)
	err1 := zeroAt(f, 0, n)
	err2 := zeroAt(f, size-n, n)
	if err := errors.Join(err1, err2, f.Sync()); err != nil {
		log.Error("could not zero the ends of the target after a failure", "error", err)
	}
}

func zeroAt(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	_, err := f.WriteAt(make([]byte, n), off)
	return err
}

func permitted(format string, list []string) bool {
	if len(list) == 0 {
		return format == "raw"
	}
	for _, p := range list {
		if p == format {
			return true
		}
	}
	return false
}

// writeOne runs the pipeline for one source: download and hash (one
// goroutine), decompress and cut into chunks (another), write (a third).
func writeOne(ctx context.Context, req Request, src Source, sum Checksum, f *os.File, devSize int64) (*Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h, err := sum.NewHash()
	if err != nil {
		return nil, err
	}
	rr, err := openDownload(ctx, src, req.HTTP.Parallel, req.Retry, func(err error) {
		req.Progress.Retries.Add(1)
		req.Log.Warn("image download interrupted, resuming", "url", src.String(), "error", err)
	}, req.Log.Info)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	if size := rr.total(); size > 0 {
		req.Progress.Total.Store(size)
	}
	res := &Result{Device: req.Device, Source: src.String(), Algo: sum.Algo}

	// Stage 1: download and hash, running ahead of the rest by up to
	// 16 MiB of buffers.
	pr := newBufPipe(16, 1<<20)
	var hashErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			buf, err := pr.buffer()
			if err != nil {
				hashErr = err
				return
			}
			t0 := time.Now()
			n, err := io.ReadFull(rr, buf)
			t1 := time.Now()
			req.Progress.DownloadNanos.Add(int64(t1.Sub(t0)))
			if n > 0 {
				h.Write(buf[:n])
				req.Progress.HashNanos.Add(int64(time.Since(t1)))
				req.Progress.Downloaded.Add(int64(n))
				if serr := pr.send(buf[:n]); serr != nil {
					hashErr = serr
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				pr.closeWrite(io.EOF)
				return
			}
			if err != nil {
				hashErr = err
				pr.closeWrite(err)
				return
			}
		}
	}()
	defer func() { pr.closeRead(); wg.Wait() }()

	// Stage 2: decompress and chunk.
	br := bufio.NewReaderSize(pr, 1<<20)
	inner, comp, closeDec, err := decompress(br)
	if err != nil {
		return nil, err
	}
	if closeDec != nil {
		defer closeDec()
	}
	res.Compression = comp
	ib := bufio.NewReaderSize(inner, 64<<10)
	head, _ := ib.Peek(512)
	res.Format = detectFormat(head)
	if res.Format != "raw" && !permitted(res.Format, req.PermittedFormats) {
		return nil, &FormatNotPermittedError{Format: res.Format, Permitted: req.PermittedFormats}
	}
	var (
		held              []byte
		off               int64
		writeErr, readErr error
	)
	switch res.Format {
	case "raw":
		if size := rr.total(); comp == "" && size > devSize {
			return nil, &TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: size}
		}
		held, off, readErr, writeErr = writeRawStream(ctx, cancel, ib, f, devSize, req, &pr.waited)
	case "qcow2":
		t := time.Now()
		held, off, readErr, writeErr = writeQcow2(ib, f, devSize, req)
		// The qcow2 decoder reads and writes on one goroutine: its time less
		// the waits for the download is decoding and writing together.
		req.Progress.DecompressNanos.Add(int64(time.Since(t)) - pr.waited.Load())
	default:
		return nil, &UnsupportedFormatError{Format: res.Format}
	}
	if writeErr == nil && readErr == nil {
		// Let the hasher see every byte served (a compressed stream may
		// carry bytes after its end), so the digest covers the download.
		io.Copy(io.Discard, pr)
	}
	pr.closeRead()
	wg.Wait()
	if writeErr != nil {
		return nil, writeErr
	}
	if readErr != nil {
		if comp != "" {
			return nil, fmt.Errorf("decompressing the %s image from %s: %w", comp, src, readErr)
		}
		return nil, fmt.Errorf("reading the image from %s: %w", src, readErr)
	}
	if hashErr != nil && !errors.Is(hashErr, errReaderClosed) {
		return nil, fmt.Errorf("downloading %s: %w", src, hashErr)
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	downloaded, size := rr.progress()
	if size >= 0 && downloaded != size {
		return nil, fmt.Errorf("downloading %s: got %d of %d bytes", src, downloaded, size)
	}
	got := hex.EncodeToString(h.Sum(nil))
	res.Digest, res.Downloaded, res.Written = got, downloaded, off
	if got != sum.Value {
		return nil, &ChecksumMismatchError{Algo: sum.Algo, Want: sum.Value, Got: got}
	}
	// Verified: everything else reaches the disk first, then the head.
	tw := time.Now()
	defer func() { req.Progress.WriteNanos.Add(int64(time.Since(tw))) }()
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", req.Device, err)
	}
	if _, err := f.WriteAt(held, 0); err != nil {
		return nil, fmt.Errorf("writing the first MiB of %s: %w", req.Device, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", req.Device, err)
	}
	req.Log.Info("image written and verified", "device", req.Device, "bytes", off, "downloaded", downloaded, sum.Algo, got, "compression", comp, "stage_seconds", req.Progress.Stages())
	return res, nil
}

// writeRawStream cuts the raw stream into chunks on one goroutine and
// hands them to `writers` concurrent writers, holding the first MiB
// back. Aligned chunks go through an O_DIRECT descriptor where the
// device takes one: no second copy through the page cache, whose dirty
// pages would otherwise fill a ramdisk's memory.
func writeRawStream(ctx context.Context, cancel context.CancelCauseFunc, ib io.Reader, f *os.File, devSize int64, req Request, pipeWait *atomic.Int64) (held []byte, off int64, readErr, writeErr error) {
	direct := f
	if d, err := os.OpenFile(req.Device, os.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0); err == nil {
		direct = d
		defer d.Close()
	}
	var wg sync.WaitGroup
	chunks := make(chan []byte, inFlight)
	pool := sync.Pool{New: func() any { b := alignedChunk(); return &b }}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		for {
			b := (*pool.Get().(*[]byte))[:chunkSize]
			t, w := time.Now(), pipeWait.Load()
			n, err := io.ReadFull(ib, b)
			req.Progress.DecompressNanos.Add(int64(time.Since(t)) - (pipeWait.Load() - w))
			if n > 0 {
				select {
				case chunks <- b[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()

	// Stage 3: write with several writers, holding the first MiB back.
	type job struct {
		buf, data []byte
		at        int64
	}
	jobs := make(chan job)
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { writeErr = err; cancel(err) })
	}
	var writers sync.WaitGroup
	for i := 0; i < rawWriters; i++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for j := range jobs {
				if ctx.Err() == nil {
					t := time.Now()
					w := f
					if len(j.data)%directAlign == 0 && aligned(j.data) {
						w = direct
					}
					err := writeSparse(w, j.data, j.at, req.KnownZeroed)
					req.Progress.WriteNanos.Add(int64(time.Since(t)))
					if err != nil {
						fail(fmt.Errorf("writing %s at %d: %w", req.Device, j.at, err))
					} else {
						req.Progress.Written.Add(int64(len(j.data)))
					}
				}
				b := j.buf[:cap(j.buf)]
				pool.Put(&b)
			}
		}()
	}
	held = make([]byte, 0, holdBack)
	for b := range chunks {
		if ctx.Err() != nil {
			continue // drain so the producer ends
		}
		if off+int64(len(b)) > devSize {
			fail(&TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: off + int64(len(b))})
			continue
		}
		data, at := b, off
		if off < holdBack {
			keep := min(int64(len(b)), holdBack-off)
			held = append(held, b[:keep]...)
			req.Progress.Written.Add(keep)
			data, at = b[keep:], off+keep
		}
		off += int64(len(b))
		jobs <- job{buf: b, data: data, at: at}
	}
	close(jobs)
	writers.Wait()
	wg.Wait()
	if writeErr == nil && ctx.Err() != nil && readErr == nil {
		writeErr = context.Cause(ctx)
	}
	return held, off, readErr, writeErr
}

// rawWriters write chunks at once; directAlign is what O_DIRECT needs of
// a buffer's address and length (the largest logical block size).
const (
	rawWriters  = 4
	directAlign = 4096
)

// alignedChunk returns a chunk buffer whose start is directAlign-aligned.
func alignedChunk() []byte {
	b := make([]byte, chunkSize+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+chunkSize : skip+chunkSize]
}

func aligned(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%directAlign == 0
}

const sparseBlock = 64 << 10

var zeroBlock = make([]byte, sparseBlock)

// writeSparse writes data at off, turning runs of all-zero 64 KiB blocks
// into a zeroing offload that guarantees zeros (BLKZEROOUT; zero writes
// where the device has none), or skipping them on a device known to be
// zeroed. A sparse image goes at the speed of its data and still leaves
// no old data behind.
func writeSparse(f *os.File, data []byte, off int64, knownZeroed bool) error {
	for len(data) > 0 {
		n := 0
		zero := isZero(data[:min(len(data), sparseBlock)])
		for n < len(data) {
			k := min(len(data)-n, sparseBlock)
			if isZero(data[n:n+k]) != zero {
				break
			}
			n += k
		}
		switch {
		case !zero:
			if _, err := f.WriteAt(data[:n], off); err != nil {
				return err
			}
		case knownZeroed:
		default:
			if err := disk.ZeroRange(f, off, int64(n)); err != nil {
				return err
			}
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:k], zeroBlock[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
