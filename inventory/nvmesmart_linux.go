package inventory

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

const (
	nvmeOpGetLogPage = 0x02
	nvmeOpIdentify   = 0x06
	nvmeLogHealth    = 0x02
	nvmeAllNSIDs     = 0xffffffff
	nvmeAdminTimeout = 5000 // ms: a health read is instant on a working drive
)

// nvmeAdminRead runs an admin command that returns n bytes, through
// disk's passthrough (a status from the controller is an error too).
func nvmeAdminRead(f *os.File, cmd disk.NVMeAdminCommand, n int) ([]byte, error) {
	buf := make([]byte, n)
	cmd.TimeoutMs = nvmeAdminTimeout
	if err := disk.NVMeAdmin(f, &cmd, buf); err != nil {
		return nil, fmt.Errorf("nvme admin opcode 0x%02x: %w", cmd.Opcode, err)
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
	id, idErr := nvmeAdminRead(f, disk.NVMeAdminCommand{Opcode: nvmeOpIdentify, Cdw10: 1}, nvmeIdentifySize)
	health, logErr := nvmeAdminRead(f, disk.NVMeAdminCommand{Opcode: nvmeOpGetLogPage, NSID: nvmeAllNSIDs,
		Cdw10: nvmeLogHealth | uint32(nvmeHealthLogSize/4-1)<<16}, nvmeHealthLogSize)
	if idErr != nil && logErr != nil {
		return nil, nil, fmt.Errorf("%s: %w", dev, logErr)
	}
	return id, health, nil
}
