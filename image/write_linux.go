package image

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

const (
	// holdBack is the part of the image written last: the partition
	// table and boot code live there, so until it is written the disk
	// does not boot.
	holdBack = 1 << 20
	// pipeQueue is how many hashed chunks may wait for the decoder or
	// the writers; the download's own buffers are the real bound.
	pipeQueue = 16
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
	// Unverified writes the image without hashing it. Only `goipa
	// write-image --checksum none` sets it (local debugging, CI image
	// builds, and measuring the engine beside tools that do not hash):
	// the agent always verifies what Ironic sends, and a checksum of
	// "none" in a ChecksumSpec is refused (see Resolve).
	Unverified bool
	Progress   *Progress
	Log        *slog.Logger
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
	sum := Checksum{Algo: "none"}
	if !req.Unverified {
		if sum, err = req.Checksum.Resolve(ctx, client); err != nil {
			return nil, err
		}
	}
	// A multipath map's partition devices hold it exclusively.
	if err := disk.ReleaseMapPartitions(req.Device); err != nil {
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
// goroutine), decompress or decode (this one, idle for a raw image as
// served), write (devWriter's rawWriters goroutines).
func writeOne(ctx context.Context, req Request, src Source, sum Checksum, f *os.File, devSize int64) (*Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var h hash.Hash // nil: not verified (req.Unverified)
	if !req.Unverified {
		var err error
		if h, err = sum.NewHash(); err != nil {
			return nil, err
		}
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

	// Stage 1: hash the downloaded chunks in order, each sparseBlock
	// checked for zeros while it is in this core's cache, and pass them
	// on as they are. The download reads ahead on goroutines of its own;
	// the chunks it holds bound how far this stage runs ahead.
	pr := newBufPipe(pipeQueue)
	var hashErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hashPriority()
		for {
			t0 := time.Now()
			b, release, err := rr.nextChunk()
			t1 := time.Now()
			req.Progress.DownloadNanos.Add(int64(t1.Sub(t0)))
			if err == io.EOF {
				pr.closeWrite(io.EOF)
				return
			}
			if err != nil {
				hashErr = err
				pr.closeWrite(err)
				return
			}
			pb := pipeBuf{b: b, release: release, hasMask: len(b) <= 64*sparseBlock}
			for i := 0; i < len(b); i += sparseBlock {
				blk := b[i:min(len(b), i+sparseBlock)]
				if h != nil {
					h.Write(blk)
				}
				if pb.hasMask && isZero(blk) {
					pb.zmask |= 1 << (i / sparseBlock)
				}
			}
			req.Progress.HashNanos.Add(int64(time.Since(t1)))
			req.Progress.Downloaded.Add(int64(len(b)))
			if err := pr.send(pb); err != nil {
				release()
				hashErr = err
				return
			}
		}
	}()
	defer func() { pr.closeRead(); wg.Wait() }()

	// Stage 2: decompress and decode, unless the image is raw as served:
	// then the downloaded buffers themselves go to the writers.
	var (
		held              []byte
		off               int64
		writeErr, readErr error
	)
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { writeErr = err; cancel(err) })
	}
	dw := newDevWriter(ctx, fail, f, req)
	head := pr.peek(512)
	comp := compression(head)
	res.Compression = comp
	if comp == "" {
		res.Format = detectFormat(head)
	}
	switch {
	case comp == "" && res.Format == "raw":
		if size := rr.total(); size > devSize {
			dw.close()
			return nil, &TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: size}
		}
		off, readErr = writeRawBuffers(ctx, pr, dw, devSize, req, fail)
		held = dw.held[:min(holdBack, off)]
	default:
		var inner io.Reader = pr
		if comp != "" {
			br := bufio.NewReaderSize(pr, 1<<20)
			var closeDec func()
			var err error
			inner, _, closeDec, err = decompress(br)
			if err != nil {
				dw.close()
				return nil, err
			}
			if closeDec != nil {
				defer closeDec()
			}
		}
		ib := bufio.NewReaderSize(inner, 64<<10)
		if comp != "" {
			head, _ := ib.Peek(512)
			res.Format = detectFormat(head)
		}
		if res.Format != "raw" && !permitted(res.Format, req.PermittedFormats) {
			dw.close()
			return nil, &FormatNotPermittedError{Format: res.Format, Permitted: req.PermittedFormats}
		}
		switch res.Format {
		case "raw":
			off, readErr = writeRawStream(ctx, ib, dw, devSize, req, &pr.waited, fail)
			held = dw.held[:min(holdBack, off)]
		case "qcow2":
			t := time.Now()
			var r io.Reader = ib
			if comp == "" {
				r = pr // nothing consumed yet: the decoder reads the buffers itself
			}
			off, readErr = writeQcow2(r, dw, devSize, req, fail)
			held = dw.held[:min(holdBack, off)]
			// Decoding runs on this goroutine: its time less the waits
			// for the download (and for free buffers) is the decoding.
			req.Progress.DecompressNanos.Add(int64(time.Since(t)) - pr.waited.Load())
		default:
			dw.close()
			return nil, &UnsupportedFormatError{Format: res.Format}
		}
	}
	dw.close()
	if writeErr == nil && ctx.Err() != nil && readErr == nil {
		writeErr = context.Cause(ctx)
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
	got := ""
	if h != nil {
		got = hex.EncodeToString(h.Sum(nil))
	}
	res.Digest, res.Downloaded, res.Written = got, downloaded, off
	if h != nil && got != sum.Value {
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
	msg := "image written and verified"
	if h == nil {
		msg = "image written WITHOUT verification (--checksum none)"
	}
	req.Log.Info(msg, "device", req.Device, "bytes", off, "downloaded", downloaded, sum.Algo, got, "compression", comp, "stage_seconds", req.Progress.Stages())
	return res, nil
}

// writeRawBuffers hands the downloaded buffers of a raw image, as they
// are, to the writers.
func writeRawBuffers(ctx context.Context, pr *bufPipe, dw *devWriter, devSize int64, req Request, fail func(error)) (off int64, readErr error) {
	for ctx.Err() == nil {
		pb, err := pr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
		if off+int64(len(pb.b)) > devSize {
			pb.release()
			fail(&TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: off + int64(len(pb.b))})
			break
		}
		n := int64(len(pb.b))
		if err := dw.submit(wjob{data: pb.b, at: off, zmask: pb.zmask, hasMask: pb.hasMask, release: pb.release}); err != nil {
			break
		}
		off += n
	}
	return off, nil
}

// writeRawStream cuts a decompressed raw stream into chunks for the
// writers.
func writeRawStream(ctx context.Context, ib io.Reader, dw *devWriter, devSize int64, req Request, pipeWait *atomic.Int64, fail func(error)) (off int64, readErr error) {
	for ctx.Err() == nil {
		b, err := dw.getBuf()
		if err != nil {
			break
		}
		t, w := time.Now(), pipeWait.Load()
		n, err := io.ReadFull(ib, b)
		req.Progress.DecompressNanos.Add(int64(time.Since(t)) - (pipeWait.Load() - w))
		if n > 0 {
			if off+int64(n) > devSize {
				dw.putBuf(b)
				fail(&TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: off + int64(n)})
				break
			}
			if serr := dw.submit(wjob{data: b[:n], at: off, release: func() { dw.putBuf(b) }}); serr != nil {
				break
			}
			off += int64(n)
		} else {
			dw.putBuf(b)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// hashPriority gives the calling goroutine an OS thread of its own at a
// raised priority, for the rest of its life. The hash is the one stage
// that cannot be split over cores, so on a small machine the whole write
// goes at the speed of the core it gets; the parallel stages (socket
// reads, writers, the kernel's own threads) share what is left and catch
// up while the hash waits for them. Without privilege to raise it the
// priority stays as it was. The thread is never unlocked: it ends with
// the goroutine instead of returning to the runtime with the priority.
func hashPriority() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), hashNice)
}

// hashNice weighs the hash thread about ten to one against a thread at
// the default priority: ahead of the rest, without starving the API on
// a single core.
const hashNice = -10
