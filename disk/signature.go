package disk

import (
	"encoding/binary"
	"fmt"
	"os"
)

// MBRSignature reads the 32-bit disk signature at byte 440 of dev, which
// get_partition_uuids reports as a whole-disk image's root uuid.
func MBRSignature(dev string) (uint32, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], 440); err != nil {
		return 0, fmt.Errorf("reading the disk signature of %s: %w", dev, err)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}
