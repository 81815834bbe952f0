package vmedia

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/sys/unix"
)

// NetworkDataPath is where Ironic (and Nova's config drive) put the
// node's network configuration.
const NetworkDataPath = "openstack/latest/network_data.json"

// maxNetworkData bounds what is read of network_data.json: Ironic's are
// a few KiB.
const maxNetworkData = 4 << 20

// openMedia gives the device's filesystem, read-only, and how to let go
// of it. ISO 9660 is read in Go (no isofs module or mount needed); if
// that fails, and for the FAT floppy, the kernel mounts it read-only.
func openMedia(ctx context.Context, d Device) (fs.FS, func(), error) {
	if d.FSType == FSISO9660 || d.FSType == "" {
		f, err := os.Open(d.Path)
		if err == nil {
			isofs, rerr := iso9660.Read(file.New(f, true), 0, 0, 2048)
			if rerr == nil {
				return isofs, func() { f.Close() }, nil
			}
			f.Close()
			err = rerr
		}
		if d.FSType == FSISO9660 {
			fsys, release, merr := mountReadOnly(ctx, d.Path, "iso9660")
			if merr == nil {
				return fsys, release, nil
			}
			return nil, nil, fmt.Errorf("reading ISO 9660 on %s: %w (and mounting it: %v)", d.Path, err, merr)
		}
	}
	return mountReadOnly(ctx, d.Path, "vfat")
}

func mountReadOnly(ctx context.Context, dev, fstype string) (fs.FS, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "goipa-vmedia-")
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Mount(dev, dir, fstype, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		os.Remove(dir)
		return nil, nil, fmt.Errorf("mounting %s (%s) read-only: %w", dev, fstype, err)
	}
	return os.DirFS(dir), func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// CopyResult is what CopyConfig took from the medium.
type CopyResult struct {
	Copied      []string // destination paths
	NetworkData []byte   // nil when the medium has none
}

// CopyConfig copies etc/ironic-python-agent/ and etc/ironic-python-agent.d/
// from the medium into etcRoot (usually /etc) as IPA's _copy_config_from
// does (the regular files of each directory; a missing directory is
// normal), and reads openstack/latest/network_data.json.
func CopyConfig(ctx context.Context, d Device, etcRoot string, log func(string, ...any)) (*CopyResult, error) {
	fsys, release, err := openMedia(ctx, d)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &CopyResult{}
	for _, dir := range []string{"ironic-python-agent", "ironic-python-agent.d"} {
		src := path.Join("etc", dir)
		entries, err := fs.ReadDir(fsys, src)
		if err != nil {
			if log != nil {
				log("virtual media: no configuration directory", "path", src)
			}
			continue
		}
		dest := filepath.Join(etcRoot, dir)
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return res, fmt.Errorf("copying virtual media configuration: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				if log != nil {
					log("virtual media: skipping a non-file", "path", path.Join(src, e.Name()))
				}
				continue
			}
			to := filepath.Join(dest, e.Name())
			if err := copyFile(fsys, path.Join(src, e.Name()), to); err != nil {
				return res, fmt.Errorf("copying virtual media configuration %s to %s: %w", src, dest, err)
			}
			res.Copied = append(res.Copied, to)
		}
	}
	if f, err := fsys.Open(NetworkDataPath); err == nil {
		b, err := io.ReadAll(io.LimitReader(f, maxNetworkData+1))
		f.Close()
		switch {
		case err != nil:
			return res, fmt.Errorf("reading %s: %w", NetworkDataPath, err)
		case len(b) > maxNetworkData:
			return res, fmt.Errorf("%s is larger than %d bytes", NetworkDataPath, maxNetworkData)
		}
		res.NetworkData = b
	} else if !errors.Is(err, fs.ErrNotExist) && log != nil {
		log("virtual media: no network data", "error", err)
	}
	return res, nil
}

func copyFile(fsys fs.FS, from, to string) error {
	in, err := fsys.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".goipa-tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, to)
}

// ReadFloppyParams reads parameters.txt from the virtual floppy.
func ReadFloppyParams(ctx context.Context, d Device) (map[string]string, error) {
	fsys, release, err := openMedia(ctx, d)
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := fsys.Open("parameters.txt")
	if err != nil {
		return nil, fmt.Errorf("virtual floppy %s: %w", d.Path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("virtual floppy %s: parameters.txt: %w", d.Path, err)
	}
	return ParseParams(string(b)), nil
}
