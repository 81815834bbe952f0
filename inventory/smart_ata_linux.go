package inventory

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sgIOHeader is struct sg_io_hdr (scsi/sg.h), 64-bit layout.
type sgIOHeader struct {
	InterfaceID    int32
	DxferDirection int32
	CmdLen         uint8
	MxSbLen        uint8
	IovecCount     uint16
	DxferLen       uint32
	Dxferp         uintptr
	Cmdp           uintptr
	Sbp            uintptr
	Timeout        uint32
	Flags          uint32
	PackID         int32
	UsrPtr         uintptr
	Status         uint8
	MaskedStatus   uint8
	MsgStatus      uint8
	SbLenWr        uint8
	HostStatus     uint16
	DriverStatus   uint16
	Resid          int32
	Duration       uint32
	Info           uint32
}

const (
	sgIOIoctl         = 0x2285
	sgDxferFromDevice = -3
	sgTimeoutMs       = 5000
)

// ataPIOIn16 is ATA PASS-THROUGH (16) for a 28-bit PIO data-in command
// of one 512-byte block (SAT-4 12.2.3: PROTOCOL 4, T_DIR in, BYTE_BLOCK,
// T_LENGTH in the COUNT field).
func ataPIOIn16(command, features byte, lba uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x85
	cdb[1] = 4 << 1
	cdb[2] = 0x08 | 0x04 | 0x02
	cdb[4] = features
	cdb[6] = 1
	cdb[8] = byte(lba)
	cdb[10] = byte(lba >> 8)
	cdb[12] = byte(lba >> 16)
	cdb[14] = command
	return cdb
}

// ATA commands read for SMART (ACS-3 7.12 and 7.48).
const (
	ataCmdIdentify   = 0xec
	ataCmdSMART      = 0xb0
	ataSMARTReadData = 0xd0
	ataSMARTReadThr  = 0xd1
	ataSMARTLBA      = 0xc24f00 // the signature SMART commands carry
)

func sgReadBlock(f *os.File, cdb []byte) ([]byte, error) {
	data := make([]byte, 512)
	sense := make([]byte, 32)
	h := sgIOHeader{InterfaceID: 'S', DxferDirection: sgDxferFromDevice, CmdLen: uint8(len(cdb)), MxSbLen: uint8(len(sense)),
		DxferLen: uint32(len(data)), Dxferp: uintptr(unsafe.Pointer(&data[0])), Cmdp: uintptr(unsafe.Pointer(&cdb[0])),
		Sbp: uintptr(unsafe.Pointer(&sense[0])), Timeout: sgTimeoutMs}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), sgIOIoctl, uintptr(unsafe.Pointer(&h)))
	runtime.KeepAlive(data)
	runtime.KeepAlive(cdb)
	runtime.KeepAlive(sense)
	if errno != 0 {
		return nil, fmt.Errorf("SG_IO: %w", errno)
	}
	if h.Info&1 != 0 || h.Status != 0 || h.HostStatus != 0 || h.DriverStatus != 0 {
		return nil, fmt.Errorf("ATA command 0x%02x failed: status 0x%02x host 0x%x driver 0x%x", cdb[14], h.Status, h.HostStatus, h.DriverStatus)
	}
	return data, nil
}

// readATASMART asks an ATA disk (behind libata's or an HBA's SCSI-ATA
// translation) for IDENTIFY DEVICE and, when SMART is enabled, its
// attribute values and thresholds. Read-only commands.
func readATASMART(dev string) (identify, data, thresh []byte, err error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	if identify, err = sgReadBlock(f, ataPIOIn16(ataCmdIdentify, 0, 0)); err != nil {
		return nil, nil, nil, err
	}
	if !ataSMARTEnabled(identify) {
		return identify, nil, nil, nil
	}
	if data, err = sgReadBlock(f, ataPIOIn16(ataCmdSMART, ataSMARTReadData, ataSMARTLBA)); err != nil {
		return identify, nil, nil, nil
	}
	thresh, _ = sgReadBlock(f, ataPIOIn16(ataCmdSMART, ataSMARTReadThr, ataSMARTLBA))
	return identify, data, thresh, nil
}
