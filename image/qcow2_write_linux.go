package image

import (
	"fmt"
	"io"
	"os"

	"github.com/goipa/goipa/disk"
)

// writeQcow2 converts a qcow2 stream to the device as it arrives: each
// allocated cluster goes to its guest offset (the first MiB held back),
// and whatever the image does not allocate is zeroed afterwards with an
// offload that guarantees zeros, so the device holds exactly the image.
func writeQcow2(ib io.Reader, f *os.File, devSize int64, req Request) (held []byte, virtual int64, readErr, writeErr error) {
	head := make([]byte, 512)
	if _, err := io.ReadFull(ib, head); err != nil {
		return nil, 0, fmt.Errorf("qcow2 header: %w", err), nil
	}
	h, err := ParseQcow2Header(head)
	if err != nil {
		return nil, 0, err, nil
	}
	virtual = int64(h.VirtualSize)
	if virtual > devSize {
		return nil, 0, nil, &TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: virtual}
	}
	held = make([]byte, min(holdBack, virtual))
	csize := int64(1) << h.ClusterBits
	covered := make([]uint64, (virtual/csize+64)/64)
	mark := func(off, n int64) {
		for c := off / csize; c*csize < off+n; c++ {
			covered[c/64] |= 1 << (c % 64)
		}
	}
	var written int64
	emit := func(e Extent) error {
		data, at := e.Data, e.Offset
		if at < holdBack {
			k := min(int64(len(data)), holdBack-at)
			copy(held[at:], data[:k])
			data, at = data[k:], at+k
		}
		if len(data) > 0 {
			if _, err := f.WriteAt(data, at); err != nil {
				writeErr = fmt.Errorf("writing %s at %d: %w", req.Device, at, err)
				return writeErr
			}
		}
		mark(e.Offset, int64(len(e.Data)))
		written += int64(len(e.Data))
		req.Progress.Written.Store(written)
		return nil
	}
	if _, err := decodeQcow2(head, ib, emit); err != nil {
		if writeErr != nil {
			return nil, 0, nil, writeErr
		}
		return nil, 0, err, nil
	}
	// Zero what the image leaves unallocated (or marks as zero), past the
	// held-back first MiB, which is zero already where not written.
	var runStart int64 = -1
	flush := func(end int64) error {
		if runStart < 0 {
			return nil
		}
		s := max(runStart, holdBack)
		runStart = -1
		if end <= s {
			return nil
		}
		return disk.ZeroRange(f, s, end-s)
	}
	for c := int64(0); c*csize < virtual; c++ {
		if covered[c/64]&(1<<(c%64)) == 0 {
			if runStart < 0 {
				runStart = c * csize
			}
			continue
		}
		if err := flush(c * csize); err != nil {
			return nil, 0, nil, err
		}
	}
	if err := flush(virtual); err != nil {
		return nil, 0, nil, err
	}
	return held, virtual, nil, nil
}
