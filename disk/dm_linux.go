package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The device-mapper control interface (linux/dm-ioctl.h): every command
// is one struct dm_ioctl, followed for DM_TABLE_LOAD by one struct
// dm_target_spec per target and its parameter string. goipa encodes it
// itself: the Go device-mapper libraries are not served by the module
// proxy this project builds from, and x/sys/unix already carries the
// ioctl numbers and the structures' layout.

// dmVersion is the interface version asked for: 4.0.0 is accepted by
// every kernel with the version-4 interface (the kernel checks the major
// number and that the minor is not newer than its own).
var dmVersion = [3]uint32{4, 0, 0}

// dmTarget is one line of a device-mapper table.
type dmTarget struct {
	Start, Length uint64 // in 512-byte sectors
	Type, Params  string
}

// DMError is a device-mapper command the kernel refused.
type DMError struct {
	Op, Name string
	Err      error
}

func (e *DMError) Error() string {
	return fmt.Sprintf("device-mapper %s %s: %v", e.Op, e.Name, e.Err)
}

func (e *DMError) Unwrap() error { return e.Err }

// encodeDMIoctl builds the buffer of one device-mapper command: the
// header with name, uuid and flags, then the targets, each spec's next
// offset 8-byte aligned as libdevmapper aligns it. The buffer's length
// is its data_size.
func encodeDMIoctl(name, uuid string, flags uint32, targets []dmTarget) ([]byte, error) {
	if len(name) >= unix.DM_NAME_LEN {
		return nil, fmt.Errorf("device-mapper name %q is longer than %d bytes", name, unix.DM_NAME_LEN-1)
	}
	if len(uuid) >= unix.DM_UUID_LEN {
		return nil, fmt.Errorf("device-mapper uuid %q is longer than %d bytes", uuid, unix.DM_UUID_LEN-1)
	}
	size := unix.SizeofDmIoctl
	var specs [][]byte
	for _, t := range targets {
		if len(t.Type) >= unix.DM_MAX_TYPE_NAME {
			return nil, fmt.Errorf("device-mapper target type %q is too long", t.Type)
		}
		n := (unix.SizeofDmTargetSpec + len(t.Params) + 1 + 7) &^ 7
		s := make([]byte, n)
		binary.NativeEndian.PutUint64(s[0:], t.Start)
		binary.NativeEndian.PutUint64(s[8:], t.Length)
		binary.NativeEndian.PutUint32(s[20:], uint32(n)) // next: from this spec to the next
		copy(s[24:24+unix.DM_MAX_TYPE_NAME], t.Type)
		copy(s[unix.SizeofDmTargetSpec:], t.Params)
		specs = append(specs, s)
		size += n
	}
	b := make([]byte, size)
	for i, v := range dmVersion {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	binary.NativeEndian.PutUint32(b[12:], uint32(size))               // data_size
	binary.NativeEndian.PutUint32(b[16:], uint32(unix.SizeofDmIoctl)) // data_start
	binary.NativeEndian.PutUint32(b[20:], uint32(len(targets)))       // target_count
	binary.NativeEndian.PutUint32(b[28:], flags)
	copy(b[48:48+unix.DM_NAME_LEN], name)
	copy(b[176:176+unix.DM_UUID_LEN], uuid)
	off := unix.SizeofDmIoctl
	for _, s := range specs {
		off += copy(b[off:], s)
	}
	return b, nil
}

// dmReplyDev is the device number the kernel wrote back into a reply.
func dmReplyDev(b []byte) uint64 { return binary.NativeEndian.Uint64(b[40:]) }

// The layout encodeDMIoctl writes by hand is x/sys/unix's.
var _ = [1]struct{}{}[unsafe.Offsetof(unix.DmIoctl{}.Dev)-40]
var _ = [1]struct{}{}[unsafe.Offsetof(unix.DmIoctl{}.Name)-48]
var _ = [1]struct{}{}[unsafe.Offsetof(unix.DmIoctl{}.Uuid)-176]
var _ = [1]struct{}{}[unsafe.Offsetof(unix.DmTargetSpec{}.Next)-20]
var _ = [1]struct{}{}[unsafe.Offsetof(unix.DmTargetSpec{}.Target_type)-24]

// dmControl is an open /dev/mapper/control.
type dmControl struct{ f *os.File }

func openDMControl() (*dmControl, error) {
	f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// devtmpfs makes the node when dm_mod loads; a /dev without it
		// gets it from misc's number.
		err = makeDMControlNode()
		if err == nil {
			f, err = os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("device-mapper control: %w (is dm_mod loaded?)", err)
	}
	return &dmControl{f: f}, nil
}

func makeDMControlNode() error {
	b, err := os.ReadFile("/sys/class/misc/device-mapper/dev")
	if err != nil {
		return err
	}
	var ma, mi uint32
	if _, err := fmt.Sscanf(string(b), "%d:%d", &ma, &mi); err != nil {
		return err
	}
	if err := os.MkdirAll("/dev/mapper", 0o755); err != nil {
		return err
	}
	return unix.Mknod("/dev/mapper/control", unix.S_IFCHR|0o600, int(unix.Mkdev(ma, mi)))
}

func (c *dmControl) Close() error { return c.f.Close() }

func (c *dmControl) do(op string, cmd uint, name string, b []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, c.f.Fd(), uintptr(cmd), uintptr(unsafe.Pointer(&b[0])))
	runtime.KeepAlive(b)
	if errno != 0 {
		return &DMError{Op: op, Name: name, Err: errno}
	}
	return nil
}

// create makes an empty device-mapper device and returns its number.
func (c *dmControl) create(name, uuid string) (uint64, error) {
	b, err := encodeDMIoctl(name, uuid, 0, nil)
	if err != nil {
		return 0, err
	}
	if err := c.do("create", unix.DM_DEV_CREATE, name, b); err != nil {
		return 0, err
	}
	return dmReplyDev(b), nil
}

// load loads a table into the device's inactive slot.
func (c *dmControl) load(name string, targets []dmTarget) error {
	b, err := encodeDMIoctl(name, "", 0, targets)
	if err != nil {
		return err
	}
	return c.do("table load", unix.DM_TABLE_LOAD, name, b)
}

// resume makes the loaded table live (DM_DEV_SUSPEND without the
// suspend flag).
func (c *dmControl) resume(name string) error {
	b, err := encodeDMIoctl(name, "", 0, nil)
	if err != nil {
		return err
	}
	return c.do("resume", unix.DM_DEV_SUSPEND, name, b)
}

func (c *dmControl) remove(name string) error {
	b, err := encodeDMIoctl(name, "", 0, nil)
	if err != nil {
		return err
	}
	return c.do("remove", unix.DM_DEV_REMOVE, name, b)
}
