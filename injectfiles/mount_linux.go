package injectfiles

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
)

// withFilePartition mounts the partition a file goes to and runs fn with
// the mount as an os.Root, so no path or symlink in the tenant's image
// can lead a write outside it. The partition is a number on the install
// disk, a device path, or, when not given, the partition whose
// filesystem holds the path's first directory (as IPA looks it up).
// Every partition passes allow before it is mounted: a device path the
// request names may lie outside what goipa may write.
func withFilePartition(ctx context.Context, device, partition, rel string, allow func(dev string) error, fn func(root *os.Root, rel string) error) error {
	if err := disk.EnsurePartitionNodes(ctx, device); err != nil {
		return err
	}
	var candidates []string
	switch {
	case partition == "":
		first, rest, ok := strings.Cut(rel, "/")
		if !ok {
			return invalid("Invalid path /%s, must be an absolute path to a file", rel)
		}
		parts, err := partitionsOf(device)
		if err != nil {
			return err
		}
		for _, p := range parts {
			candidates = append(candidates, disk.PartitionPath(device, p.Number))
		}
		for _, c := range candidates {
			if err := allow(c); err != nil {
				return err
			}
			found := false
			err := mountFor(ctx, c, func(dir string) error {
				root, err := os.OpenRoot(dir)
				if err != nil {
					return err
				}
				defer root.Close()
				if st, err := root.Stat(first); err == nil && st.IsDir() {
					found = true
					sub, err := root.OpenRoot(first)
					if err != nil {
						return err
					}
					defer sub.Close()
					return fn(sub, rest)
				}
				return nil
			})
			if found {
				return err
			}
		}
		return &NoPartitionError{Dir: first, Scanned: candidates}
	default:
		dev := partition
		if n, err := strconv.Atoi(partition); err == nil {
			dev = disk.PartitionPath(device, n)
		} else if !strings.HasPrefix(partition, "/dev/") || path.Clean(partition) != partition {
			return invalid("partition %q: want a partition number or a /dev path", partition)
		}
		if err := allow(dev); err != nil {
			return err
		}
		return mountFor(ctx, dev, func(dir string) error {
			root, err := os.OpenRoot(dir)
			if err != nil {
				return err
			}
			defer root.Close()
			return fn(root, rel)
		})
	}
}

// mountFor mounts a partition (its filesystem type probed) for fn.
func mountFor(ctx context.Context, dev string, fn func(dir string) error) error {
	if err := disk.WaitForPartition(ctx, dev); err != nil {
		return err
	}
	fsys, err := disk.ProbeDevice(dev)
	if err != nil {
		return err
	}
	if fsys.Type == "" || fsys.Type == "swap" || fsys.Type == "iso9660" {
		return nil // nothing to write into
	}
	dir, err := os.MkdirTemp("", "goipa-inject-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount(dev, dir, fsys.Type, unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting %s (%s): %w", dev, fsys.Type, err)
	}
	defer func() {
		unix.Sync()
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}()
	return fn(filepath.Clean(dir))
}
