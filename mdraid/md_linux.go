package mdraid

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The md driver's ioctls (include/uapi/linux/raid/md_u.h): _IOW(9, nr,
// struct) for the three that take an argument, _IO for STOP_ARRAY.
const (
	mdMajor        = 9
	ioctlSetArray  = 1<<30 | uintptr(unsafe.Sizeof(mduArrayInfo{}))<<16 | mdMajor<<8 | 0x23
	ioctlAddNewDev = 1<<30 | uintptr(unsafe.Sizeof(mduDiskInfo{}))<<16 | mdMajor<<8 | 0x21
	ioctlRunArray  = 1<<30 | uintptr(unsafe.Sizeof(mduParam{}))<<16 | mdMajor<<8 | 0x30
	ioctlStopArray = mdMajor<<8 | 0x32
)

// mduArrayInfo is mdu_array_info_t. With only the versions set, it
// tells the driver to read each added member's superblock (assembly).
type mduArrayInfo struct {
	MajorVersion, MinorVersion, PatchVersion int32
	CTime                                    uint32
	Level, Size, NrDisks, RaidDisks          int32
	MDMinor, NotPersistent                   int32
	UTime                                    uint32
	State, ActiveDisks, WorkingDisks         int32
	FailedDisks, SpareDisks, Layout, Chunk   int32
}

// mduDiskInfo is mdu_disk_info_t.
type mduDiskInfo struct{ Number, Major, Minor, RaidDisk, State int32 }

// mduParam is mdu_param_t; RUN_ARRAY ignores it for superblock arrays.
type mduParam struct{ Personality, ChunkSize, MaxFault int32 }

// NoDriverError says the running kernel has no md driver loaded.
type NoDriverError struct{}

func (NoDriverError) Error() string {
	return "the kernel has no md (software RAID) driver: md_mod is not loaded"
}

// sysRoot lets tests point sysfs reads elsewhere; the ramdisk uses "/".
var sysRoot = "/"

func sys(p string) string { return filepath.Join(sysRoot, "sys", p) }

// Created is an array this package made.
type Created struct {
	Device  string   // /dev/mdN
	Members []string // member partitions, in slot order
	Name    string
	UUID    string
}

// Create writes version-1 superblocks for spec onto members (block
// devices, normally partitions) and starts the array as /dev/md<index>
// through the md driver. Old superblocks at the other 1.x positions are
// zeroed first, so a later scan does not find two arrays.
func Create(ctx context.Context, index int, spec Spec, members []string) (*Created, error) {
	if _, err := os.Stat(sys("module/md_mod")); err != nil {
		return nil, NoDriverError{}
	}
	if spec.Time.IsZero() {
		spec.Time = time.Now()
	}
	if spec.UUID == ([16]byte{}) {
		rand.Read(spec.UUID[:])
	}
	sizes := make([]uint64, len(members))
	uuids := make([][16]byte, len(members))
	for i, m := range members {
		n, err := sectors(m)
		if err != nil {
			return nil, err
		}
		sizes[i] = n
		rand.Read(uuids[i][:])
		if err := ZeroSuperblock(m); err != nil {
			return nil, err
		}
	}
	sbs, err := spec.Superblocks(sizes, uuids)
	if err != nil {
		return nil, err
	}
	for i, m := range members {
		if err := writeSuperblock(m, sbs[i]); err != nil {
			return nil, err
		}
	}
	dev, err := Assemble(ctx, index, spec.Metadata, members)
	if err != nil {
		return nil, err
	}
	return &Created{Device: dev, Members: members, Name: spec.Name, UUID: sbs[0].UUID()}, nil
}

func sectors(dev string) (uint64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); errno != 0 {
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, fmt.Errorf("size of %s: %w", dev, errno)
		}
		n = uint64(st.Size())
	}
	return n / 512, nil
}

func writeSuperblock(dev string, sb *Superblock) error {
	b, err := sb.Marshal()
	if err != nil {
		return err
	}
	// A full 4 KiB block: correct on 4 KiB-sector devices too, and the
	// space after the superblock up to the data (1.2) or the end (1.0)
	// belongs to md.
	buf := make([]byte, 4096)
	copy(buf, b)
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(buf, int64(sb.SuperOffset)*512); err != nil {
		return fmt.Errorf("writing the md superblock to %s: %w", dev, err)
	}
	return f.Sync()
}

// Examine reads the version-1 superblock of dev, trying 1.2, 1.1 and
// 1.0 positions, as `mdadm --examine` does. A superblock counts only if
// its super_offset says it is where it was found.
func Examine(dev string) (*Superblock, int, error) {
	n, err := sectors(dev)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(dev)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return examine(f, n)
}

func examine(f interface {
	ReadAt([]byte, int64) (int, error)
}, n uint64) (*Superblock, int, error) {
	buf := make([]byte, 4096)
	for _, minor := range []int{2, 1, 0} {
		off, err := SuperOffset(minor, n)
		if err != nil || off+8 > n {
			continue
		}
		if _, err := f.ReadAt(buf, int64(off)*512); err != nil {
			continue
		}
		sb, err := Parse(buf)
		if err != nil || sb.SuperOffset != off {
			continue
		}
		return sb, minor, nil
	}
	return nil, 0, ErrNoSuperblock
}

// ZeroSuperblock wipes any version-1 superblock on dev (mdadm
// --zero-superblock); a device without one is left alone.
func ZeroSuperblock(dev string) error {
	n, err := sectors(dev)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zero := make([]byte, 4096)
	for {
		sb, _, err := examine(f, n)
		if errors.Is(err, ErrNoSuperblock) {
			return f.Sync()
		}
		if _, err := f.WriteAt(zero, int64(sb.SuperOffset)*512); err != nil {
			return fmt.Errorf("zeroing the md superblock of %s: %w", dev, err)
		}
	}
}

// Assemble starts /dev/md<index> from members that carry superblocks of
// metadata 1.<minor>: the array is made (md_mod's new_array), told to
// read superblocks (SET_ARRAY_INFO with the version only), given each
// member (ADD_NEW_DISK) and run (RUN_ARRAY).
func Assemble(ctx context.Context, index, minor int, members []string) (string, error) {
	if _, err := os.Stat(sys("module/md_mod")); err != nil {
		return "", NoDriverError{}
	}
	name := fmt.Sprintf("md%d", index)
	dev := "/dev/" + name
	if err := os.WriteFile(sys("module/md_mod/parameters/new_array"), []byte(name), 0); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("making %s: %w", dev, err)
	}
	if err := waitNode(ctx, dev, unix.Mkdev(mdMajor, uint32(index))); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info := mduArrayInfo{MajorVersion: 1, MinorVersion: int32(minor)}
	if err := ioctl(f, ioctlSetArray, unsafe.Pointer(&info)); err != nil {
		return "", fmt.Errorf("%s: SET_ARRAY_INFO: %w", dev, err)
	}
	for _, m := range members {
		var st unix.Stat_t
		if err := unix.Stat(m, &st); err != nil {
			stopFd(f)
			return "", err
		}
		d := mduDiskInfo{Major: int32(unix.Major(uint64(st.Rdev))), Minor: int32(unix.Minor(uint64(st.Rdev)))}
		if err := ioctl(f, ioctlAddNewDev, unsafe.Pointer(&d)); err != nil {
			stopFd(f)
			return "", fmt.Errorf("%s: adding %s: %w", dev, m, err)
		}
	}
	var p mduParam
	if err := ioctl(f, ioctlRunArray, unsafe.Pointer(&p)); err != nil {
		stopFd(f)
		return "", fmt.Errorf("%s: RUN_ARRAY: %w", dev, err)
	}
	return dev, nil
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

func stopFd(f *os.File) { ioctl(f, ioctlStopArray, nil) }

// waitNode waits (bounded) for devtmpfs to show a new md device, and
// makes the node itself where no devtmpfs does.
func waitNode(ctx context.Context, dev string, rdev uint64) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(rdev)); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s did not appear and cannot be made: %w", dev, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops a running array (mdadm --stop); its members keep their
// superblocks.
func Stop(ctx context.Context, dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var last error
	// The array may still be held a moment after its last user closed
	// it (a partition re-read, a resync thread); retry briefly.
	for range 50 {
		if last = ioctl(f, ioctlStopArray, nil); last == nil {
			return nil
		}
		if !errors.Is(last, unix.EBUSY) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("stopping %s: %w", dev, last)
}

// Array is an md device the kernel has.
type Array struct {
	Device  string   // /dev/mdN
	Level   string   // sysfs level: raid0, raid1, ...
	Members []string // /dev paths of its members (slaves)
	Sectors uint64
}

// Arrays lists the md arrays the kernel runs (or holds inactive), with
// their members, from sysfs.
func Arrays() ([]Array, error) {
	ents, err := os.ReadDir(sys("block"))
	if err != nil {
		return nil, err
	}
	var out []Array
	for _, e := range ents {
		k := e.Name()
		if !strings.HasPrefix(k, "md") || strings.Contains(k, "p") {
			continue
		}
		a := Array{Device: "/dev/" + k}
		lvl, _ := os.ReadFile(sys("block/" + k + "/md/level"))
		a.Level = strings.TrimSpace(string(lvl))
		sz, _ := os.ReadFile(sys("block/" + k + "/size"))
		a.Sectors, _ = strconv.ParseUint(strings.TrimSpace(string(sz)), 10, 64)
		slaves, _ := os.ReadDir(sys("block/" + k + "/slaves"))
		for _, s := range slaves {
			a.Members = append(a.Members, "/dev/"+s.Name())
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// ArraysOn lists the arrays whose members all lie on disks (whole-disk
// /dev paths): the only ones a caller limited to those disks may stop or
// wipe. An array with one member elsewhere belongs to that other disk
// too and is left alone.
func ArraysOn(disks []string) ([]Array, error) {
	all, err := Arrays()
	if err != nil {
		return nil, err
	}
	var out []Array
	for _, a := range all {
		on := len(a.Members) > 0
		for _, m := range a.Members {
			if !slices.Contains(disks, HolderDisk(m)) {
				on = false
				break
			}
		}
		if on {
			out = append(out, a)
		}
	}
	return out, nil
}

// HolderDisk is the whole disk a partition belongs to (/dev/vda for
// /dev/vda1), or dev itself when it is a whole disk.
func HolderDisk(dev string) string {
	k := filepath.Base(dev)
	if _, err := os.Stat(sys("class/block/" + k + "/partition")); err != nil {
		return dev
	}
	real, err := filepath.EvalSymlinks(sys("class/block/" + k))
	if err != nil {
		return dev
	}
	return "/dev/" + filepath.Base(filepath.Dir(real))
}

// Partitions lists the kernel's partitions of a whole disk (/dev paths).
func Partitions(disk string) []string {
	k := filepath.Base(disk)
	ents, _ := os.ReadDir(sys("block/" + k))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), k) {
			if _, err := os.Stat(sys("block/" + k + "/" + e.Name() + "/partition")); err == nil {
				out = append(out, "/dev/"+e.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// IsMember reports whether disk, or any of its partitions, is an md
// member: held by a running array, or carrying a version-1 superblock.
// It is IPA's "lsblk --fs shows linux_raid_member" for the disk and
// its children; a device that cannot be read counts as a member, as
// IPA counts an lsblk failure.
func IsMember(disk string) bool {
	for _, d := range append([]string{disk}, Partitions(disk)...) {
		k := filepath.Base(d)
		if hs, _ := os.ReadDir(sys("class/block/" + k + "/holders")); len(hs) > 0 {
			for _, h := range hs {
				if strings.HasPrefix(h.Name(), "md") {
					return true
				}
			}
		}
		_, _, err := Examine(d)
		if err == nil {
			return true
		}
		if !errors.Is(err, ErrNoSuperblock) && !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// DriverLoaded reports whether the kernel's md driver is there, so a
// caller can refuse before it partitions anything.
func DriverLoaded() bool {
	_, err := os.Stat(sys("module/md_mod"))
	return err == nil
}
