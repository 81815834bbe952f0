package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// multipathMapDevice is what goipa needs of a map to give it
// partitions: its kernel name, device-mapper name and UUID, and number.
type multipathMapDevice struct {
	Kernel, Name, UUID, DevNo string
}

// multipathMapAt returns the map dev (a path in /dev, symlinks
// followed) is, ok false when dev is no dm-multipath map.
func multipathMapAt(sys, dev string) (multipathMapDevice, bool) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		real = dev
	}
	k := filepath.Base(real)
	if _, ok := MultipathWWIDOf(sys, k); !ok {
		return multipathMapDevice{}, false
	}
	read := func(f string) string {
		b, _ := os.ReadFile(blockDir(sys, k, f))
		return strings.TrimSpace(string(b))
	}
	m := multipathMapDevice{Kernel: k, Name: read("dm/name"), UUID: read("dm/uuid"), DevNo: read("dev")}
	if m.Name == "" || m.DevNo == "" {
		return multipathMapDevice{}, false
	}
	return m, true
}

// mapPartitionPath is where the node of partition n of dev is when dev
// is a multipath map.
func mapPartitionPath(sys, dev string, n int) (string, bool) {
	m, ok := multipathMapAt(sys, dev)
	if !ok {
		return "", false
	}
	return filepath.Join("/dev/mapper", mapPartitionName(m.Name, n)), true
}

// removeMapPartitions removes the partition devices of map m (its
// holders with kpartx's UUID) and their /dev/mapper links. A partition
// still in use (mounted, held) makes it fail, and the map stays busy.
func removeMapPartitions(sys string, m multipathMapDevice) error {
	holders, _ := os.ReadDir(blockDir(sys, m.Kernel, "holders"))
	var names []string
	for _, h := range holders {
		b, err := os.ReadFile(blockDir(sys, h.Name(), "dm/uuid"))
		if err != nil {
			continue
		}
		if _, ok := isMapPartitionUUID(strings.TrimSpace(string(b)), m.UUID); !ok {
			continue
		}
		n, err := os.ReadFile(blockDir(sys, h.Name(), "dm/name"))
		if err != nil {
			continue
		}
		names = append(names, strings.TrimSpace(string(n)))
	}
	if len(names) == 0 {
		return nil
	}
	ctl, err := openDMControl()
	if err != nil {
		return err
	}
	defer ctl.Close()
	var errs []error
	for _, name := range names {
		if err := ctl.remove(name); err != nil {
			errs = append(errs, fmt.Errorf("removing partition map %s of multipath map %s: %w", name, m.Name, err))
			continue
		}
		os.Remove(filepath.Join("/dev/mapper", name))
	}
	return errors.Join(errs...)
}

// ReleaseMapPartitions removes the partition devices of dev when it is a
// multipath map, so that it can be opened exclusively (each holds the
// map); nothing for any other device.
func ReleaseMapPartitions(dev string) error {
	m, ok := multipathMapAt("/sys", dev)
	if !ok {
		return nil
	}
	return removeMapPartitions("/sys", m)
}

// SyncMapPartitions is partprobe for a multipath map, what kpartx -u
// does: the map's partition devices are removed and made again from
// the partition table it holds now, each with its /dev/mapper link and
// the kernel's node. Nothing for any other device. The map must not be
// open exclusively (the linear targets claim it).
func SyncMapPartitions(ctx context.Context, dev string) error {
	m, ok := multipathMapAt("/sys", dev)
	if !ok {
		return nil
	}
	if err := removeMapPartitions("/sys", m); err != nil {
		return err
	}
	t, err := ReadTable(dev)
	if err != nil {
		// An empty or unreadable table has no partitions to map.
		return nil
	}
	ctl, err := openDMControl()
	if err != nil {
		return err
	}
	defer ctl.Close()
	for _, p := range t.Partitions {
		if isExtendedContainer(p) {
			continue
		}
		if err := makeMapPartition(ctx, ctl, m, p); err != nil {
			return err
		}
	}
	return nil
}

// isExtendedContainer reports an MBR extended partition: it holds the
// logical ones and no data.
func isExtendedContainer(p Partition) bool {
	return p.UUID == "" && (p.MBRType == 0x05 || p.MBRType == 0x0f || p.MBRType == 0x85)
}

func makeMapPartition(ctx context.Context, ctl *dmControl, m multipathMapDevice, p Partition) error {
	target, err := mapPartitionTarget(m.DevNo, p)
	if err != nil {
		return fmt.Errorf("multipath map %s: %w", m.Name, err)
	}
	name := mapPartitionName(m.Name, p.Number)
	dev, err := ctl.create(name, mapPartitionUUID(m.UUID, p.Number))
	if err != nil {
		return err
	}
	if err := ctl.load(name, []dmTarget{target}); err != nil {
		ctl.remove(name)
		return fmt.Errorf("%w (table %q)", err, target.Params)
	}
	if err := ctl.resume(name); err != nil {
		ctl.remove(name)
		return err
	}
	k, err := waitBlockNode(ctx, "/sys", unix.Major(dev), unix.Minor(dev))
	if err != nil {
		return fmt.Errorf("partition map %s: %w", name, err)
	}
	if err := os.MkdirAll("/dev/mapper", 0o755); err != nil {
		return err
	}
	link := filepath.Join("/dev/mapper", name)
	os.Remove(link)
	if err := os.Symlink("../"+k, link); err != nil {
		return fmt.Errorf("partition map %s: %w", name, err)
	}
	return nil
}
