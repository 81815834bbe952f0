package inventory

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nvmeAdminCmd is struct nvme_admin_cmd (linux/nvme_ioctl.h).
type nvmeAdminCmd struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	Cdw2, Cdw3  uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	Cdw10       uint32
	Cdw11       uint32
	Cdw12       uint32
	Cdw13       uint32
	Cdw14       uint32
	Cdw15       uint32
	TimeoutMs   uint32
	Result      uint32
}

// nvmeIoctlAdminCmd is _IOWR('N', 0x41, struct nvme_admin_cmd).
const nvmeIoctlAdminCmd = 0xc0484e41

const (
	nvmeOpGetLogPage = 0x02
	nvmeOpIdentify   = 0x06
	nvmeLogHealth    = 0x02
	nvmeAllNSIDs     = 0xffffffff
	nvmeAdminTimeout = 5000 // ms: a health read is instant on a working drive
)

// nvmeAdminRead runs an admin command that returns n bytes.
func nvmeAdminRead(f *os.File, cmd nvmeAdminCmd, n int) ([]byte, error) {
	buf := make([]byte, n)
	cmd.Addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
	cmd.DataLen = uint32(n)
	cmd.TimeoutMs = nvmeAdminTimeout
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return nil, fmt.Errorf("nvme admin opcode 0x%02x: %w", cmd.Opcode, errno)
	}
	return buf, nil
}

// readNVMeSMART asks an NVMe namespace's controller for Identify
// Controller and the SMART / Health log, read-only.
func readNVMeSMART(dev string) (id, health []byte, err error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	id, idErr := nvmeAdminRead(f, nvmeAdminCmd{Opcode: nvmeOpIdentify, Cdw10: 1}, nvmeIdentifySize)
	health, logErr := nvmeAdminRead(f, nvmeAdminCmd{Opcode: nvmeOpGetLogPage, NSID: nvmeAllNSIDs,
		Cdw10: nvmeLogHealth | uint32(nvmeHealthLogSize/4-1)<<16}, nvmeHealthLogSize)
	if idErr != nil && logErr != nil {
		return nil, nil, fmt.Errorf("%s: %w", dev, logErr)
	}
	return id, health, nil
}
