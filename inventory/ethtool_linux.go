package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool over SIOCETHTOOL: the link settings lshw reads (speed, duplex,
// autonegotiation, the supported link modes IPA's speed_mbps comes from),
// the pause parameters `ethtool -a` prints and the offload features
// `ethtool -k` prints, which the hardware package reports.

const (
	ethtoolGSet          = 0x00000001
	ethtoolGStrings      = 0x0000001b
	ethtoolGPauseParam   = 0x00000012
	ethtoolGSSetInfo     = 0x00000037
	ethtoolGFeatures     = 0x0000003a
	ethtoolGLinkSettings = 0x0000004c
	ethSSFeatures        = 4
	ethGStringLen        = 32
	// maxFeatureStrings bounds what a driver may claim (the kernel has
	// about 70 features).
	maxFeatureStrings = 4096
)

// ifreqData is struct ifreq with ifr_data: the name and a pointer to the
// ethtool command, padded to the union's size.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtoolIoctl runs one ethtool command whose buffer starts with its
// 32-bit command number.
func ethtoolIoctl(ifname string, buf []byte) error {
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("ethtool: interface name %q too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool: %w", err)
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&buf[0])
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("ethtool %s command 0x%x: %w", ifname, binary.LittleEndian.Uint32(buf), errno)
	}
	return nil
}

// linkSettings is what ETHTOOL_GLINKSETTINGS (or the legacy GSET) says.
type linkSettings struct {
	SpeedMbps int64 // 0 when unknown (no link)
	Duplex    string
	Autoneg   bool
	Supported []uint32 // link mode bitmap
}

func readLinkSettings(ifname string) (linkSettings, error) {
	native := binary.NativeEndian
	// The handshake: nwords 0 asks the kernel for its bitmap size.
	hdr := make([]byte, 48)
	native.PutUint32(hdr, ethtoolGLinkSettings)
	if err := ethtoolIoctl(ifname, hdr); err == nil && int8(hdr[11]) < 0 {
		n := int(-int8(hdr[11]))
		buf := make([]byte, 48+3*4*n)
		native.PutUint32(buf, ethtoolGLinkSettings)
		buf[11] = byte(n)
		if err := ethtoolIoctl(ifname, buf); err != nil {
			return linkSettings{}, err
		}
		ls := parseLinkHeader(native.Uint32(buf[4:]), buf[8], buf[12] != 0)
		for i := range n {
			ls.Supported = append(ls.Supported, native.Uint32(buf[48+4*i:]))
		}
		return ls, nil
	}
	buf := make([]byte, 44)
	native.PutUint32(buf, ethtoolGSet)
	if err := ethtoolIoctl(ifname, buf); err != nil {
		return linkSettings{}, err
	}
	speed := uint32(native.Uint16(buf[12:])) | uint32(native.Uint16(buf[28:]))<<16
	ls := parseLinkHeader(speed, buf[14], buf[18] != 0)
	ls.Supported = []uint32{native.Uint32(buf[4:])}
	return ls, nil
}

func parseLinkHeader(speed uint32, duplex byte, autoneg bool) linkSettings {
	ls := linkSettings{Autoneg: autoneg}
	if speed != 0 && speed != 0xffffffff {
		ls.SpeedMbps = int64(speed)
	}
	switch duplex {
	case 0:
		ls.Duplex = "half"
	case 1:
		ls.Duplex = "full"
	}
	return ls
}

// readPause is `ethtool -a`.
func readPause(ifname string) (autoneg, rx, tx bool, err error) {
	buf := make([]byte, 16)
	binary.NativeEndian.PutUint32(buf, ethtoolGPauseParam)
	if err := ethtoolIoctl(ifname, buf); err != nil {
		return false, false, false, err
	}
	n := binary.NativeEndian
	return n.Uint32(buf[4:]) != 0, n.Uint32(buf[8:]) != 0, n.Uint32(buf[12:]) != 0, nil
}

// readFeatures is the data of `ethtool -k`: the kernel's feature names
// and their states.
func readFeatures(ifname string) ([]netFeature, error) {
	n := binary.NativeEndian
	info := make([]byte, 20)
	n.PutUint32(info, ethtoolGSSetInfo)
	n.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtoolIoctl(ifname, info); err != nil {
		return nil, err
	}
	if n.Uint64(info[8:]) == 0 {
		return nil, errors.New("ethtool: no feature strings")
	}
	count := int(n.Uint32(info[16:]))
	if count <= 0 || count > maxFeatureStrings {
		return nil, fmt.Errorf("ethtool: %d feature strings", count)
	}
	strs := make([]byte, 12+count*ethGStringLen)
	n.PutUint32(strs, ethtoolGStrings)
	n.PutUint32(strs[4:], ethSSFeatures)
	n.PutUint32(strs[8:], uint32(count))
	if err := ethtoolIoctl(ifname, strs); err != nil {
		return nil, err
	}
	blocks := (count + 31) / 32
	feat := make([]byte, 8+16*blocks)
	n.PutUint32(feat, ethtoolGFeatures)
	n.PutUint32(feat[4:], uint32(blocks))
	if err := ethtoolIoctl(ifname, feat); err != nil {
		return nil, err
	}
	out := make([]netFeature, 0, count)
	for i := range count {
		name := unix.ByteSliceToString(strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen])
		b := 8 + 16*(i/32)
		bit := uint32(1) << (i % 32)
		out = append(out, netFeature{
			Name:      name,
			Available: n.Uint32(feat[b:])&bit != 0,
			Requested: n.Uint32(feat[b+4:])&bit != 0,
			Active:    n.Uint32(feat[b+8:])&bit != 0,
			Fixed:     n.Uint32(feat[b+12:])&bit != 0,
		})
	}
	return out, nil
}

// ethtoolGPermAddr is ETHTOOL_GPERMADDR; maxAddrLen is MAX_ADDR_LEN.
const ethtoolGPermAddr, maxAddrLen = 0x20, 32

// permanentMAC is the NIC's burnt-in address (what IPA reports), ""
// when the driver has none (all zeroes) or cannot say.
func permanentMAC(ifname string) string {
	buf := make([]byte, 8+maxAddrLen)
	binary.NativeEndian.PutUint32(buf, ethtoolGPermAddr)
	binary.NativeEndian.PutUint32(buf[4:], maxAddrLen)
	if err := ethtoolIoctl(ifname, buf); err != nil {
		return ""
	}
	n := min(int(binary.NativeEndian.Uint32(buf[4:])), maxAddrLen)
	addr := buf[8 : 8+n]
	zero := true
	parts := make([]string, n)
	for i, b := range addr {
		zero = zero && b == 0
		parts[i] = fmt.Sprintf("%02x", b)
	}
	if zero || n == 0 {
		return ""
	}
	return strings.Join(parts, ":")
}
