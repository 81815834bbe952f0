package firmware

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goipa/goipa/disk"
	"golang.org/x/sys/unix"
)

// Admin command timeouts: a download chunk is quick; a commit writes
// the slot and may take minutes on some drives.
const (
	downloadTimeoutMs = 60 * 1000
	commitTimeoutMs   = 10 * 60 * 1000
	readTimeoutMs     = 10 * 1000
)

// nvmeController sends admin commands to /dev/<name> through disk's
// passthrough.
type nvmeController struct {
	f     *os.File
	name  string
	sysfs string
}

func openNVMe(root, name string) (NVMeDevice, error) {
	return openNVMeMode(root, name, os.O_RDWR)
}

// openNVMeReadOnly is for reading the controller only (the inventory).
func openNVMeReadOnly(root, name string) (NVMeDevice, error) {
	return openNVMeMode(root, name, os.O_RDONLY)
}

func openNVMeMode(root, name string, mode int) (NVMeDevice, error) {
	f, err := os.OpenFile(filepath.Join(root, "dev", name), mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening NVMe controller %s: %w", name, err)
	}
	return &nvmeController{f: f, name: name, sysfs: filepath.Join(root, "sys/class/nvme", name)}, nil
}

func (c *nvmeController) read(op uint8, nsid, cdw10 uint32, n int) ([]byte, error) {
	buf := make([]byte, n)
	cmd := disk.NVMeAdminCommand{Opcode: op, NSID: nsid, Cdw10: cdw10, TimeoutMs: readTimeoutMs}
	if err := disk.NVMeAdmin(c.f, &cmd, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func (c *nvmeController) Identify(ctx context.Context) ([]byte, error) {
	b, err := c.read(nvmeOpIdentify, 0, 1, nvmeIdentifySize)
	if err != nil {
		return nil, fmt.Errorf("%s: identify controller: %w", c.name, err)
	}
	return b, nil
}

func (c *nvmeController) SlotLog(ctx context.Context) ([]byte, error) {
	b, err := c.read(nvmeOpGetLogPage, 0xffffffff, SlotLogCdw10(), nvmeSlotLogSize)
	if err != nil {
		return nil, fmt.Errorf("%s: get log page 03h (firmware slot information): %w", c.name, err)
	}
	return b, nil
}

// MPSMIN reads CAP.MPSMIN (bits 51:48 of the controller's CAP register)
// from the PCI function's BAR 0. Where that cannot be read, 0 (4 KiB
// pages) is the smallest page size and so the most careful MDTS.
func (c *nvmeController) MPSMIN() uint8 {
	f, err := os.Open(filepath.Join(c.sysfs, "device/resource0"))
	if err != nil {
		return 0
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0
	}
	defer unix.Munmap(m)
	capReg := binary.LittleEndian.Uint64(m[0:8])
	return uint8(capReg >> 48 & 0xf)
}

func (c *nvmeController) Download(ctx context.Context, ch Chunk, data []byte) error {
	cmd := disk.NVMeAdminCommand{Opcode: nvmeOpFirmwareDownload, Cdw10: ch.Cdw10(), Cdw11: ch.Cdw11(), TimeoutMs: downloadTimeoutMs}
	if err := disk.NVMeAdmin(c.f, &cmd, data); err != nil {
		return fmt.Errorf("%s: firmware image download at byte %d: %w", c.name, ch.Offset, err)
	}
	return nil
}

func (c *nvmeController) Commit(ctx context.Context, slot int, action CommitAction) (bool, error) {
	cmd := disk.NVMeAdminCommand{Opcode: nvmeOpFirmwareCommit, Cdw10: CommitCdw10(slot, action), TimeoutMs: commitTimeoutMs}
	err := disk.NVMeAdmin(c.f, &cmd, nil)
	var se *disk.NVMeStatusError
	if errors.As(err, &se) {
		if pending, ok := CommitStatus(se.StatusCode()); ok {
			return pending, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("%s: firmware commit (slot %d, action %d): %w", c.name, slot, action, err)
	}
	return false, nil
}

func (c *nvmeController) Close() error { return c.f.Close() }
