package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// Filesystem is what ProbeFilesystem recognises at the start of a
// partition, in blkid's terms.
type Filesystem struct {
	Type  string // ext4 (any ext), xfs, btrfs, vfat, swap, iso9660
	UUID  string // blkid's UUID: lower-case 8-4-4-4-12, or XXXX-XXXX for vfat
	Label string
}

// ProbeFilesystem reads the superblock at off in r. An unknown or absent
// filesystem gives a zero Filesystem and no error; only read failures
// other than a short device are errors.
func ProbeFilesystem(r io.ReaderAt, off int64) (Filesystem, error) {
	buf := make([]byte, 68*1024)
	n, err := r.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		if n == 0 {
			return Filesystem{}, err
		}
	}
	return probeBytes(buf[:n]), nil
}

func probeBytes(b []byte) Filesystem {
	at := func(o, n int) []byte {
		if o+n > len(b) {
			return nil
		}
		return b[o : o+n]
	}
	text := func(p []byte) string { return strings.TrimRight(string(bytes.TrimRight(p, "\x00")), " ") }
	if m := at(1024+56, 2); m != nil && binary.LittleEndian.Uint16(m) == 0xef53 {
		return Filesystem{Type: "ext4", UUID: uuidText(at(1024+104, 16)), Label: text(at(1024+120, 16))}
	}
	if m := at(0, 4); string(m) == "XFSB" {
		return Filesystem{Type: "xfs", UUID: uuidText(at(32, 16)), Label: text(at(108, 12))}
	}
	if m := at(65536+64, 8); string(m) == "_BHRfS_M" {
		return Filesystem{Type: "btrfs", UUID: uuidText(at(65536+32, 16)), Label: text(at(65536+299, 256))}
	}
	if m := at(32769, 5); string(m) == "CD001" {
		return Filesystem{Type: "iso9660", Label: text(at(32808, 32))}
	}
	if m := at(4096-10, 10); string(m) == "SWAPSPACE2" || string(m) == "SWAP-SPACE" {
		return Filesystem{Type: "swap", UUID: uuidText(at(1024+12, 16)), Label: text(at(1024+28, 16))}
	}
	if sig := at(510, 2); sig != nil && sig[0] == 0x55 && sig[1] == 0xaa {
		if string(at(82, 5)) == "FAT32" {
			return Filesystem{Type: "vfat", UUID: fatSerial(at(67, 4)), Label: fatLabel(at(71, 11))}
		}
		if t := string(at(54, 5)); t == "FAT16" || t == "FAT12" {
			return Filesystem{Type: "vfat", UUID: fatSerial(at(39, 4)), Label: fatLabel(at(43, 11))}
		}
	}
	return Filesystem{}
}

func uuidText(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func fatSerial(b []byte) string {
	if len(b) != 4 {
		return ""
	}
	v := binary.LittleEndian.Uint32(b)
	return fmt.Sprintf("%04X-%04X", v>>16, v&0xffff)
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " \x00")
	if l == "NO NAME" {
		return ""
	}
	return l
}

// ProbeDevice is ProbeFilesystem at the start of a device or partition.
func ProbeDevice(path string) (Filesystem, error) {
	f, err := os.Open(path)
	if err != nil {
		return Filesystem{}, err
	}
	defer f.Close()
	return ProbeFilesystem(f, 0)
}
