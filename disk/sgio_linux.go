package disk

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sgIOHdr is struct sg_io_hdr from scsi/sg.h (64-bit layout: Go aligns
// the pointer fields as C does, so the offsets match).
type sgIOHdr struct {
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
	sgIO           = 0x2285
	sgDxferNone    = -1
	sgDxferToDev   = -2
	sgDxferFromDev = -3
	sgInfoCheck    = 0x1
	scsiStatusGood = 0x00
)

// sgDir says which way an SG_IO command moves data.
type sgDir int32

const (
	sgNone    sgDir = sgDxferNone
	sgToDev   sgDir = sgDxferToDev
	sgFromDev sgDir = sgDxferFromDev
)

// SGError is a SCSI command that the device (or the kernel) refused: the
// status, host and driver codes, and the sense data when there is some.
type SGError struct {
	CDB                      []byte
	Status                   uint8
	HostStatus, DriverStatus uint16
	Sense                    []byte
	SenseInfo                Sense
}

func (e *SGError) Error() string {
	msg := fmt.Sprintf("SCSI command 0x%02x failed: status 0x%02x host 0x%x driver 0x%x", e.CDB[0], e.Status, e.HostStatus, e.DriverStatus)
	if len(e.Sense) > 0 {
		msg += ": " + e.SenseInfo.String()
	}
	return msg
}

// sgCommand sends one SCSI command through SG_IO. data is read into or
// written from according to dir. A command that the device completes
// with CHECK CONDITION returns an *SGError carrying the parsed sense.
//
// SG_IO cannot be called back once issued: ctx is checked before, and the
// kernel's timeout bounds the wait.
func sgCommand(ctx context.Context, f *os.File, cdb []byte, dir sgDir, data []byte, timeout time.Duration) (sense []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sb := make([]byte, 64)
	cmd := append([]byte(nil), cdb...)
	h := sgIOHdr{
		InterfaceID:    'S',
		DxferDirection: int32(dir),
		CmdLen:         uint8(len(cmd)),
		MxSbLen:        uint8(len(sb)),
		Cmdp:           uintptr(unsafe.Pointer(&cmd[0])),
		Sbp:            uintptr(unsafe.Pointer(&sb[0])),
		Timeout:        uint32(min(timeout.Milliseconds(), 1<<32-1)),
	}
	if len(data) > 0 {
		h.DxferLen = uint32(len(data))
		h.Dxferp = uintptr(unsafe.Pointer(&data[0]))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), sgIO, uintptr(unsafe.Pointer(&h)))
	runtime.KeepAlive(cmd)
	runtime.KeepAlive(sb)
	runtime.KeepAlive(data)
	if errno != 0 {
		return nil, fmt.Errorf("SG_IO: %w", errno)
	}
	sense = sb[:h.SbLenWr]
	// SG_INFO_CHECK (info bit 0) is the kernel's summary of a non-zero
	// masked, host or driver status; each is checked too.
	if h.Info&sgInfoCheck != 0 || h.Status != scsiStatusGood || h.HostStatus != 0 || h.DriverStatus != 0 {
		e := &SGError{CDB: cmd, Status: h.Status, HostStatus: h.HostStatus, DriverStatus: h.DriverStatus, Sense: sense}
		e.SenseInfo, _ = ParseSense(sense)
		return sense, e
	}
	return sense, nil
}
