package efi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// GUID is a UEFI GUID in its on-disk (mixed-endian) byte order.
type GUID [16]byte

// ParseGUID reads the usual text form (case-insensitive).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || strings.Count(s, "-") != 4 {
		return g, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	var raw [16]byte
	for i := 0; i < 16; i++ {
		var b byte
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &b); err != nil {
			return g, fmt.Errorf("GUID %q: %w", s, err)
		}
		raw[i] = b
	}
	// The first three groups are little-endian on disk.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// String is the lower-case text form efibootmgr prints.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]), binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// GlobalVariable is EFI_GLOBAL_VARIABLE, the vendor of Boot#### and BootOrder.
var GlobalVariable = GUID{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}

// Device path node types and subtypes used here (UEFI 10.3).
const (
	typeHardware  = 0x01
	typeACPI      = 0x02
	typeMessaging = 0x03
	typeMedia     = 0x04
	typeBBS       = 0x05
	typeEnd       = 0x7f

	subHardDrive = 0x01
	subFilePath  = 0x04
	subEndEntire = 0xff
)

// Node is one device path node.
type Node struct {
	Type, SubType byte
	Data          []byte // the bytes after the 4-byte header
}

// DevicePath is a sequence of nodes; Encode adds the end node.
type DevicePath []Node

// Partition signature kinds of a hard drive node.
const (
	SignatureMBR  = 1
	SignatureGUID = 2
)

// HardDrive is the media node efibootmgr writes for a partition
// ("HD(1,GPT,<guid>,0x800,0x100000)"). Start and Size are in logical blocks.
func HardDrive(number uint32, start, size uint64, gpt bool, partUUID GUID, mbrSignature uint32) Node {
	d := make([]byte, 38)
	binary.LittleEndian.PutUint32(d[0:4], number)
	binary.LittleEndian.PutUint64(d[4:12], start)
	binary.LittleEndian.PutUint64(d[12:20], size)
	if gpt {
		copy(d[20:36], partUUID[:])
		d[36], d[37] = 0x02, SignatureGUID
	} else {
		binary.LittleEndian.PutUint32(d[20:24], mbrSignature)
		d[36], d[37] = 0x01, SignatureMBR
	}
	return Node{Type: typeMedia, SubType: subHardDrive, Data: d}
}

// FilePath is the media node naming a file on the partition, with
// backslashes as UEFI wants them.
func FilePath(path string) Node {
	path = strings.ReplaceAll(path, "/", `\`)
	return Node{Type: typeMedia, SubType: subFilePath, Data: ucs2z(path)}
}

// Encode returns the binary device path, terminated by an end node.
func (p DevicePath) Encode() []byte {
	var out []byte
	for _, n := range p {
		out = append(out, n.Type, n.SubType, 0, 0)
		binary.LittleEndian.PutUint16(out[len(out)-2:], uint16(4+len(n.Data)))
		out = append(out, n.Data...)
	}
	return append(out, typeEnd, subEndEntire, 4, 0)
}

// ParseDevicePath decodes nodes up to the first end-entire node.
func ParseDevicePath(b []byte) (DevicePath, error) {
	var p DevicePath
	for {
		if len(b) < 4 {
			return p, errors.New("device path: truncated node header")
		}
		l := int(binary.LittleEndian.Uint16(b[2:4]))
		if l < 4 || l > len(b) {
			return p, fmt.Errorf("device path: node length %d out of range", l)
		}
		if b[0] == typeEnd && b[1] == subEndEntire {
			return p, nil
		}
		p = append(p, Node{Type: b[0], SubType: b[1], Data: b[4:l]})
		b = b[l:]
	}
}

// String renders the path as efibootmgr -v does for the node kinds a
// boot entry usually holds; others print as Path(type,subtype,hex).
func (p DevicePath) String() string {
	parts := make([]string, 0, len(p))
	for _, n := range p {
		parts = append(parts, n.String())
	}
	return strings.Join(parts, "/")
}

func (n Node) String() string {
	d := n.Data
	switch {
	case n.Type == typeMedia && n.SubType == subHardDrive && len(d) >= 38:
		num := binary.LittleEndian.Uint32(d[0:4])
		start := binary.LittleEndian.Uint64(d[4:12])
		size := binary.LittleEndian.Uint64(d[12:20])
		switch d[37] {
		case SignatureGUID:
			var g GUID
			copy(g[:], d[20:36])
			return fmt.Sprintf("HD(%d,GPT,%s,0x%x,0x%x)", num, g, start, size)
		case SignatureMBR:
			return fmt.Sprintf("HD(%d,MBR,0x%x,0x%x,0x%x)", num, binary.LittleEndian.Uint32(d[20:24]), start, size)
		}
		return fmt.Sprintf("HD(%d,%d,0,0x%x,0x%x)", num, d[37], start, size)
	case n.Type == typeMedia && n.SubType == subFilePath:
		return "File(" + fromUCS2(d) + ")"
	case n.Type == typeMedia && (n.SubType == 0x06 || n.SubType == 0x07) && len(d) >= 16:
		var g GUID
		copy(g[:], d[:16])
		return map[byte]string{0x06: "FvFile", 0x07: "FvVol"}[n.SubType] + "(" + g.String() + ")"
	case n.Type == typeACPI && n.SubType == 0x01 && len(d) >= 8 && binary.LittleEndian.Uint32(d[0:4]) == 0x0a0341d0:
		return fmt.Sprintf("PciRoot(0x%x)", binary.LittleEndian.Uint32(d[4:8]))
	case n.Type == typeHardware && n.SubType == 0x01 && len(d) >= 2:
		return fmt.Sprintf("Pci(0x%x,0x%x)", d[1], d[0])
	case n.Type == typeMessaging && n.SubType == 0x17 && len(d) >= 4:
		return fmt.Sprintf("NVMe(0x%x)", binary.LittleEndian.Uint32(d[0:4]))
	case n.Type == typeBBS && n.SubType == 0x01:
		return "BBS(...)"
	}
	return fmt.Sprintf("Path(%d,%d,%x)", n.Type, n.SubType, d)
}

// ucs2z encodes s as null-terminated UTF-16LE.
func ucs2z(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u)+2)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// fromUCS2 decodes UTF-16LE up to the first NUL.
func fromUCS2(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
