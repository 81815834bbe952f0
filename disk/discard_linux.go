package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrDiscardUnsupported says the device cannot discard, or cannot
// guarantee that discarded blocks read back as zeros: a discard is then
// no erase, and the caller overwrites.
var ErrDiscardUnsupported = errors.New("discard does not guarantee zeros on this device")

// discardChunk bounds one discard or zero-out request, so that
// cancellation is seen between requests on a large device.
const discardChunk = 1 << 30

// discardCapable decides from the queue limits whether a discard can be
// the erase. Discard alone never can: since Linux 4.12 the kernel no
// longer trusts devices' "discard zeroes data" (discard_zeroes_data and
// BLKDISCARDZEROES always say 0), because drives lied. What the kernel
// does guarantee is REQ_OP_WRITE_ZEROES (write_zeroes_max_bytes > 0): a
// command the device must complete with the range reading as zeros
// (NVMe Write Zeroes, SCSI WRITE SAME with UNMAP on a device reporting
// LBPRZ, a SATA SSD only with deterministic zeros after TRIM, a loop
// device as a hole punched in its file). fallocate(PUNCH_HOLE) on a block
// device asks exactly for that with deallocation allowed and no software
// fallback (BLKDEV_ZERO_NOFALLBACK), so it fails rather than quietly
// write zeros. That, after the discard, is what lets goipa count a
// discard as an erase; the sampled read-back then checks it.
func discardCapable(discardMax, writeZeroesMax int64) error {
	switch {
	case discardMax <= 0:
		return fmt.Errorf("%w: the device does not discard (discard_max_bytes 0)", ErrDiscardUnsupported)
	case writeZeroesMax <= 0:
		return fmt.Errorf("%w: the device has no write-zeroes offload (write_zeroes_max_bytes 0)", ErrDiscardUnsupported)
	}
	return nil
}

func queueLimit(kname, name string) int64 {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", kname, "queue", name))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// DiscardErase deallocates every block of dev (BLKSECDISCARD when the
// device has secure discard, BLKDISCARD otherwise) and then has the
// device guarantee zeros over the whole range (see discardCapable). It
// returns "secure-discard" or "discard", or ErrDiscardUnsupported
// (wrapped) before touching the device when it cannot guarantee zeros.
func DiscardErase(ctx context.Context, dev string, progress func(done, total int64)) (string, error) {
	if err := CheckSafe(ctx, dev); err != nil {
		return "", err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	kname, _, err := members(dev)
	if err != nil {
		return "", err
	}
	if err := discardCapable(queueLimit(kname, "discard_max_bytes"), queueLimit(kname, "write_zeroes_max_bytes")); err != nil {
		return "", err
	}
	if err := ReleaseMapPartitions(dev); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return "", err
	}
	ioctlRange := func(req uintptr, off, n int64) error {
		r := [2]uint64{uint64(off), uint64(n)}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&r))); errno != 0 {
			return errno
		}
		return nil
	}
	method := "secure-discard"
	req := uintptr(unix.BLKSECDISCARD)
	if ioctlRange(req, 0, min(size, 4096)) != nil {
		method, req = "discard", unix.BLKDISCARD
	}
	total := 2 * size
	for off := int64(0); off < size; off += discardChunk {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := ioctlRange(req, off, min(discardChunk, size-off)); err != nil {
			return "", fmt.Errorf("%s of %s at byte %d: %w", method, dev, off, err)
		}
		progress(off+min(discardChunk, size-off), total)
	}
	for off := int64(0); off < size; off += discardChunk {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n := min(discardChunk, size-off)
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return "", fmt.Errorf("%w: %s refused write-zeroes with unmap: %v", ErrDiscardUnsupported, dev, err)
			}
			return "", fmt.Errorf("zeroing %s after the %s at byte %d: %w", dev, method, off, err)
		}
		progress(size+off+n, total)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	rereadPartitions(f)
	return method, nil
}
