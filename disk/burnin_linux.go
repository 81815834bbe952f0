package disk

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// BurnInResult is one device's disk burn-in.
type BurnInResult struct {
	Device       string  `json:"device"`
	Passes       int     `json:"passes"`
	BytesWritten int64   `json:"bytes_written"`
	BytesRead    int64   `json:"bytes_verified"`
	Seconds      float64 `json:"seconds"`
}

// BurnIn writes dev end to end with a stream it can regenerate (AES-CTR,
// a new key each pass) and reads it all back with direct I/O, comparing
// every byte: IPA's burnin_disk (fio readwrite with crc32c verification)
// done by the agent. It runs loops passes, or, when runtime is set, as
// many as fit in runtime (fio's --time_based), stopping mid-pass at the
// deadline. It destroys the device's contents and refuses a device in
// use; a byte that reads back wrong is an error naming its offset.
func BurnIn(ctx context.Context, dev string, loops int, runtime time.Duration, progress func(done, total int64)) (BurnInResult, error) {
	r := BurnInResult{Device: dev}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	if err := CheckSafe(ctx, dev); err != nil {
		return r, err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return r, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return r, err
	}
	runCtx := ctx
	if runtime > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, runtime)
		defer cancel()
		loops = int(^uint(0) >> 1)
	}
	total := 2 * size * int64(min(loops, 1<<20))
	var done atomic.Int64
	ended := func(err error) bool {
		return runtime > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
	}
	for p := 0; p < loops; p++ {
		var key, nonce [16]byte
		rand.Read(key[:])
		rand.Read(nonce[:])
		block, _ := aes.NewCipher(key[:])
		before := done.Load()
		err := parallelWrite(runCtx, f, size, func(off int64, b []byte) { keystream(block, nonce, off, b) }, &done, total, progress)
		r.BytesWritten += done.Load() - before
		if ended(err) {
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("burn-in pass %d writing %s: %w", p+1, dev, err)
		}
		if err := f.Sync(); err != nil {
			return r, err
		}
		n, err := verifyStream(runCtx, f, size, func(off int64, b []byte) { keystream(block, nonce, off, b) }, &done, total, progress)
		r.BytesRead += n
		if ended(err) {
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("burn-in pass %d on %s: %w", p+1, dev, err)
		}
		r.Passes++
	}
	return r, nil
}

// verifyStream reads the device with direct I/O and compares it with
// what fill generates for each offset.
func verifyStream(ctx context.Context, f *os.File, size int64, fill func(off int64, b []byte), done *atomic.Int64, total int64, progress func(int64, int64)) (int64, error) {
	got, freeGot, err := alignedBuffer(eraseChunk)
	if err != nil {
		return 0, err
	}
	defer freeGot()
	want := make([]byte, eraseChunk)
	var read int64
	for off := int64(0); off < size; off += eraseChunk {
		if err := ctx.Err(); err != nil {
			return read, err
		}
		n := min(int64(eraseChunk), size-off)
		if _, err := f.ReadAt(got[:n], off); err != nil {
			return read, fmt.Errorf("reading at byte %d: %w", off, err)
		}
		fill(off, want[:n])
		if !bytes.Equal(got[:n], want[:n]) {
			i := 0
			for i < int(n) && got[i] == want[i] {
				i++
			}
			return read, fmt.Errorf("byte %d read back 0x%02x, written 0x%02x: the device corrupts data", off+int64(i), got[i], want[i])
		}
		read += n
		progress(done.Add(n), total)
	}
	return read, nil
}
