package disk

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NVMeAdminCommand is struct nvme_admin_cmd (linux/nvme_ioctl.h), for
// packages that send their own admin commands (firmware updates) over
// the one passthrough this package owns. Addr and DataLen are set by
// NVMeAdmin from its data argument.
type NVMeAdminCommand = nvmeAdminCmd

// NVMeStatusError is a command the controller completed with a non-zero
// status (the ioctl's positive return value): Status holds the status
// code type in bits 10:8 and the status code in bits 7:0, as the
// kernel passes them on, plus DNR/More bits above.
type NVMeStatusError struct {
	Opcode uint8
	Status uint16
}

func (e *NVMeStatusError) Error() string {
	return fmt.Sprintf("NVMe admin command 0x%02x: status 0x%03x (type %d, code 0x%02x)", e.Opcode, e.Status&0x7ff, e.Status>>8&0x7, e.Status&0xff)
}

// StatusCode is the status code type and code (bits 10:0).
func (e *NVMeStatusError) StatusCode() uint16 { return e.Status & 0x7ff }

// NVMeAdmin runs one admin command on f (an NVMe controller character
// device or namespace) with data as its buffer, read from or written to
// as the opcode's direction says. A status from the controller comes
// back as *NVMeStatusError, a refusal by the kernel as its errno.
func NVMeAdmin(f *os.File, cmd *NVMeAdminCommand, data []byte) error {
	if len(data) > 0 {
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&data[0])))
		cmd.DataLen = uint32(len(data))
	} else {
		cmd.Addr, cmd.DataLen = 0, 0
	}
	r1, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(cmd)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	if r1 != 0 {
		return &NVMeStatusError{Opcode: cmd.Opcode, Status: uint16(r1)}
	}
	return nil
}
