package image

import (
	"fmt"
	"io"
)

// writeQcow2 converts a qcow2 stream to the device as it arrives, through
// the same writers as a raw image: data clusters are read straight into
// large aligned batches (contiguous guest ranges fill one), and what the
// image leaves unallocated or marks as zero is zeroed by the offload in
// merged runs, as the tables that say so pass by. The first MiB is held
// back in dw.held.
func writeQcow2(r io.Reader, dw *devWriter, devSize int64, req Request, fail func(error)) (virtual int64, readErr error) {
	head := make([]byte, 512)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, fmt.Errorf("qcow2 header: %w", err)
	}
	h, err := ParseQcow2Header(head)
	if err != nil {
		return 0, err
	}
	virtual = int64(h.VirtualSize)
	if virtual > devSize {
		fail(&TooLargeError{Device: req.Device, DeviceSize: devSize, ImageSize: virtual})
		return 0, nil
	}
	if _, err := decodeQcow2To(head, r, dw); err != nil {
		if dw.ctx.Err() != nil {
			return 0, nil // a write failed: that is the error
		}
		return 0, err
	}
	return virtual, nil
}
