package inventory

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// snapshotTrees are what the inventory reads: walked, with their
// symlinks kept, readable attribute files copied.
var snapshotTrees = []string{
	"/sys/block", "/sys/class/net", "/sys/class/dmi/id", "/sys/bus/pci/devices",
	"/sys/devices", "/sys/firmware/dmi/tables", "/dev/disk/by-path", "/dev/disk/by-id", "/run/udev/data",
	"/sys/bus/usb/devices",
}

// snapshotFiles are single files the inventory (and ghw) read.
var snapshotFiles = []string{"/proc/cpuinfo", "/proc/meminfo", "/proc/cmdline", "/proc/self/mounts", "/proc/swaps", "/proc/mdstat"}

// snapshotSkip are attribute names whose reading has side effects,
// blocks, or returns device memory rather than text.
var snapshotSkip = map[string]bool{
	"remove": true, "rescan": true, "reset": true, "bind": true, "unbind": true, "new_id": true, "remove_id": true,
	"rom": true, "config": true, "resource": true, "driver_override": true, "trigger": true,
}

// Snapshot writes a gzipped tar of the parts of /sys, /proc, /dev and
// /run the inventory reads, for WithRoot: a machine's shape for a bug
// report, or a test. MAC addresses and serial numbers are kept, since
// the inventory reports them.
func Snapshot(ctx context.Context, w io.Writer) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	mtime := time.Unix(0, 0)
	seen := map[string]bool{}
	addDir := func(p string) error {
		for d := filepath.Dir(p); d != "/" && !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
		}
		if seen[p] {
			return nil
		}
		seen[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: 0o755, ModTime: mtime})
	}
	addFile := func(p string) error {
		if seen[p] {
			return nil
		}
		b, err := readAttr(p)
		if err != nil {
			return nil // unreadable attributes are not part of the shape
		}
		seen[p] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: 0o644, Size: int64(len(b)), ModTime: mtime}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	}
	for _, root := range snapshotTrees {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil || seen[p] {
					return nil
				}
				seen[p] = true
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(p, "/"), Linkname: target, Mode: 0o777, ModTime: mtime})
			case d.IsDir():
				// Per-CPU and per-IRQ noise the inventory never reads.
				if n := d.Name(); n == "power" || n == "msi_irqs" || n == "trace" || n == "tracing" || strings.HasPrefix(p, "/sys/devices/virtual/") && !strings.HasPrefix(p, "/sys/devices/virtual/net") && !strings.HasPrefix(p, "/sys/devices/virtual/dmi") && !strings.HasPrefix(p, "/sys/devices/virtual/block") {
					return fs.SkipDir
				}
				return addDir(p)
			case d.Type().IsRegular():
				if snapshotSkip[d.Name()] || strings.HasPrefix(d.Name(), "resource") {
					return nil
				}
				return addFile(p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot of %s: %w", root, err)
		}
	}
	for _, p := range snapshotFiles {
		if err := addDir(filepath.Dir(p)); err != nil {
			return err
		}
		if err := addFile(p); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		if err := addDir("/sys/firmware/efi"); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// readAttr reads a sysfs attribute, giving up after a second: a few
// attributes wait on hardware.
func readAttr(p string) ([]byte, error) {
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := os.Open(p)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		ch <- res{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(time.Second):
		return nil, errors.New("timed out")
	}
}

// Unpack writes a Snapshot's tar.gz into dir, for WithRoot.
func Unpack(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			// sysfs links are relative; an absolute one would leave the snapshot.
			if filepath.IsAbs(h.Linkname) {
				return fmt.Errorf("snapshot: absolute link %s -> %s", h.Name, h.Linkname)
			}
			if err := os.Symlink(h.Linkname, dst); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
		}
	}
}
