package bootc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/image"
	"github.com/goipa/goipa/rootfs"
)

// Image is a resolved container image: its layers, in order.
type Image struct {
	Source     string // the oci:// reference
	Layers     []*image.OCISource
	Compressed int64 // the layers' compressed bytes
}

// DownloadError: the image could not be resolved or read.
type DownloadError struct {
	Source string
	Err    error
}

func (e *DownloadError) Error() string {
	return fmt.Sprintf("Download of image %s failed: %v", e.Source, e.Err)
}
func (e *DownloadError) Unwrap() error { return e.Err }

// Resolve finds the image and its layers before the disk is touched: a
// missing image, bad credentials or a registry that is down leave the
// disk as it was. Errors are *DownloadError.
func Resolve(ctx context.Context, source string, client *http.Client, insecure bool, keychain authn.Keychain) (*Image, error) {
	img, err := image.ResolveOCIImage(ctx, source, client, insecure, keychain)
	if err != nil {
		return nil, &DownloadError{Source: source, Err: err}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, &DownloadError{Source: source, Err: err}
	}
	if len(layers) == 0 {
		return nil, &DownloadError{Source: source, Err: errors.New("the image has no layers")}
	}
	out := &Image{Source: source, Layers: layers}
	for _, l := range layers {
		out.Compressed += l.Size
	}
	return out, nil
}

// TooSmallError: the disk cannot hold the ESP, the image's root and the
// config drive.
type TooSmallError struct{ Details string }

func (e *TooSmallError) Error() string { return e.Details }

// RootMiB is the size of the root filesystem on device: the disk less a
// 1 MiB table, the ESP, the backup table, and the last 64 MiB for the
// config drive (plus 1 MiB of slack for alignment). *TooSmallError when
// that cannot hold the image.
func RootMiB(device string, img *Image) (int, error) {
	size, err := deviceBytes(device)
	if err != nil {
		return 0, err
	}
	rootMiB := int(size>>20) - 1 - bootcESPMiB - 1 - disk.ConfigDriveSize>>20 - 1
	if need := int(img.Compressed>>20) + bootcMinRootMiB; rootMiB < need {
		return 0, &TooSmallError{Details: fmt.Sprintf("%s (%d MiB) is too small for %s: its %d layers are %d MiB compressed, and the ESP (%d MiB), a root filesystem of at least %d MiB and the config drive (%d MiB) need %d MiB",
			device, size>>20, img.Source, len(img.Layers), img.Compressed>>20, bootcESPMiB, need, disk.ConfigDriveSize>>20, need+bootcESPMiB+disk.ConfigDriveSize>>20+3)}
	}
	return rootMiB, nil
}

// Options are what an install needs besides the disk and the image.
type Options struct {
	RootMiB        int    // from RootMiB
	AuthorizedKeys string // instance_info bootc_authorized_keys: root's SSH keys
	Retry          image.Retry
	// ConfigDrive writes the config drive (the last 64 MiB are left for
	// it) and returns its partition; nil for none.
	ConfigDrive func(ctx context.Context, device string) (string, error)
	Progress    func(v any) // the running step's progress; may be nil
	Log         *slog.Logger
}

// ConfigDriveError: writing the config drive failed.
type ConfigDriveError struct{ Err error }

func (e *ConfigDriveError) Error() string { return "config drive: " + e.Err.Error() }
func (e *ConfigDriveError) Unwrap() error { return e.Err }

// Installed is what an install left on the disk.
type Installed struct {
	Partitions        map[string]string // role ("efi", "root", "configdrive") to device
	RootUUID, ESPUUID string
}

// Install writes img to device: GPT with an ESP and an ext4 root
// filesystem (made in Go: the ramdisk has no mkfs), the image's layers
// streamed into the root through the kernel's mount, the image's UEFI
// loaders, kernel and initramfs on the ESP with a grub.cfg and a BLS
// entry, fstab, and the config drive. Anything that fails after the disk
// was touched wipes its metadata again: a failed install never leaves a
// half-installed disk that firmware would boot. The boot entries are the
// caller's (bootloader.SetupUEFI), once the disk is complete. Errors a
// caller branches on: *InvalidImageError, *ConfigDriveError.
func Install(ctx context.Context, device string, img *Image, o Options) (*Installed, error) {
	if o.Progress == nil {
		o.Progress = func(any) {}
	}
	res, err := toDisk(ctx, device, img.Layers, o)
	if err != nil {
		if werr := disk.WipeMetadata(context.WithoutCancel(ctx), device); werr != nil {
			o.Log.Error("wiping the disk after a failed bootc install", "device", device, "error", werr)
		}
		return nil, err
	}
	return res, nil
}

func deviceBytes(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return disk.DeviceSize(f)
}

// toDisk does the writing; Install wipes the disk if it fails.
func toDisk(ctx context.Context, device string, layers []*image.OCISource, o Options) (*Installed, error) {
	if err := disk.WipeMetadata(ctx, device); err != nil {
		return nil, fmt.Errorf("wiping %s: %w", device, err)
	}
	parts, err := disk.MakePartitions(ctx, device, disk.PartitionLayout{Label: "gpt", UEFI: true, ESPMiB: bootcESPMiB, RootMiB: o.RootMiB})
	if err != nil {
		return nil, fmt.Errorf("partitioning %s: %w", device, err)
	}
	espPart, rootPart := parts[disk.RoleESP], parts[disk.RoleRoot]
	espDev, rootDev := disk.PartitionPath(device, espPart.Number), disk.PartitionPath(device, rootPart.Number)
	for _, p := range []string{espDev, rootDev} {
		if err := disk.WaitForPartition(ctx, p); err != nil {
			return nil, err
		}
	}
	rootUUID, err := makeExt4(rootDev, rootPart.Size, "root")
	if err != nil {
		return nil, fmt.Errorf("making the root filesystem on %s: %w", rootDev, err)
	}
	esp, err := disk.ProbeDevice(espDev)
	if err != nil {
		return nil, err
	}
	o.Log.Info("bootc: root filesystem made", "partition", rootDev, "uuid", rootUUID, "esp", espDev, "esp_uuid", esp.UUID)
	err = withMount(rootDev, "ext4", func(root *os.Root) error {
		// mke2fs makes lost+found, go-diskfs does not; e2fsck wants it
		// to put what it recovers.
		if err := root.Mkdir("lost+found", 0o700); err != nil {
			return err
		}
		var written int64
		retry := o.Retry
		for i, l := range layers {
			dg := l.Digest
			st, err := applyLayer(ctx, root, l, retry, func(n int64) {
				o.Progress(map[string]any{"layer": i + 1, "layers": len(layers), "written_bytes": written + n})
			}, func(err error) {
				o.Log.Warn("bootc: layer download broke; resuming", "layer", i+1, "digest", dg, "error", err)
			})
			if err != nil {
				if errors.Is(err, unix.ENOSPC) {
					return fmt.Errorf("layer %d of %d (%s): the image does not fit the %d MiB root filesystem on %s: %w", i+1, len(layers), dg, rootPart.Size>>20, device, err)
				}
				return fmt.Errorf("layer %d of %d (%s): %w", i+1, len(layers), dg, err)
			}
			written += st.Bytes
			o.Log.Info("bootc: layer applied", "layer", i+1, "of", len(layers), "digest", dg, "entries", st.Entries, "files", st.Files,
				"bytes", st.Bytes, "whiteouts", st.Removed, "opaque", st.Opaque)
		}
		var err error
		entry, err := bootcBootEntry(root, rootUUID)
		if err != nil {
			return err
		}
		if err := bootcFinishRoot(root, rootUUID, esp.UUID); err != nil {
			return err
		}
		if o.AuthorizedKeys != "" {
			if err := root.MkdirAll("etc/tmpfiles.d", 0o755); err != nil {
				return err
			}
			if err := root.WriteFile("etc/tmpfiles.d/bootc-root-ssh.conf", []byte(RootSSHTmpfiles(o.AuthorizedKeys)), 0o644); err != nil {
				return err
			}
		}
		if err := populateESP(root, device, espPart, entry, esp.UUID); err != nil {
			return fmt.Errorf("the EFI system partition: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &Installed{Partitions: map[string]string{string(disk.RoleESP): espDev, string(disk.RoleRoot): rootDev}, RootUUID: rootUUID, ESPUUID: esp.UUID}
	if o.ConfigDrive != nil {
		part, err := o.ConfigDrive(ctx, device)
		if err != nil {
			return nil, &ConfigDriveError{Err: err}
		}
		res.Partitions[string(disk.RoleConfigDrive)] = part
	}
	return res, nil
}

// applyLayer streams one layer blob from the registry into the tree:
// fetched with resume (a broken connection continues from its last
// byte), decompressed as it comes (gzip or zstd, by magic: registries
// label media types loosely), and read to its very end so that the
// blob's digest is checked before the layer counts as applied.
func applyLayer(ctx context.Context, root *os.Root, l *image.OCISource, retry image.Retry, progress func(int64), onRetry func(error)) (rootfs.Stats, error) {
	rc, err := image.OpenVerified(ctx, l, retry, l.Digest, l.Size, onRetry)
	if err != nil {
		return rootfs.Stats{}, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	magic, _ := br.Peek(4)
	var tarStream io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return rootfs.Stats{}, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		tarStream = zr
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// One decoder goroutine and its low-memory mode: the window a
		// layer was compressed with is all it keeps.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return rootfs.Stats{}, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tarStream = zr
	}
	st, err := rootfs.ApplyLayer(ctx, root, tarStream, rootfs.Options{Progress: progress})
	if err != nil {
		return st, err
	}
	// Past the tar's end-of-archive blocks: the rest of the stream, and
	// with it the digest check at the blob's end.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		return st, fmt.Errorf("after the layer's end: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return st, fmt.Errorf("after the layer's end: %w", err)
	}
	return st, nil
}

// makeExt4 formats a partition as ext4 in Go (go-diskfs: the ramdisk has
// no mkfs.ext4) and returns the filesystem UUID.
func makeExt4(dev string, size int64, label string) (string, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	u := uuid.New()
	// One inode per 16 KiB, as mke2fs's default: go-diskfs's 8 KiB
	// zeroes twice the inode tables (it has no lazy init), about 4% of a
	// disk's size written at mkfs time instead of 2%.
	p := &ext4.Params{UUID: &u, VolumeName: label, InodeRatio: 16384}
	if _, err := ext4.Create(file.New(f, false), size, 0, 512, p); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return u.String(), nil
}

// rootMountFlags: the tenant's root is data to goipa, never something to
// run from: device nodes and setuid binaries in it stay inert while it
// is mounted in the ramdisk (or on an operator's host).
const rootMountFlags = unix.MS_NODEV | unix.MS_NOSUID

// withMount mounts dev with the kernel for fn, as an os.Root, nodev and
// nosuid, and unmounts it (synced) afterwards.
func withMount(dev, fstype string, fn func(root *os.Root) error) (err error) {
	dir, err := os.MkdirTemp("", "goipa-bootc-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount(dev, dir, fstype, rootMountFlags, ""); err != nil {
		return fmt.Errorf("mounting %s (%s): %w", dev, fstype, err)
	}
	defer func() {
		unix.Sync()
		if uerr := unix.Unmount(dir, 0); uerr != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
			if err == nil {
				err = fmt.Errorf("unmounting %s: %w", dev, uerr)
			}
		}
	}()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fn(root)
}

// bootcBootEntry finds the kernel (/usr/lib/modules/<version>/vmlinuz,
// where bootc images keep it, with initramfs.img beside it) and the
// image's kernel arguments (/usr/lib/bootc/kargs.d).
func bootcBootEntry(root *os.Root, rootUUID string) (bootEntry, error) {
	var versions []string
	ents, err := fs.ReadDir(root.FS(), "usr/lib/modules")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return bootEntry{}, err
	}
	for _, e := range ents {
		if st, err := root.Stat(path.Join("usr/lib/modules", e.Name(), "vmlinuz")); err == nil && st.Mode().IsRegular() {
			versions = append(versions, e.Name())
		}
	}
	ver := newestKernel(versions)
	if ver == "" {
		return bootEntry{}, &InvalidImageError{
			Details: "the container image has no kernel at /usr/lib/modules/<version>/vmlinuz: it is not a bootable (bootc) container image"}
	}
	e := bootEntry{title: "Linux " + ver, kernelVer: ver, rootUUID: rootUUID}
	if _, err := root.Stat(path.Join("usr/lib/modules", ver, "initramfs.img")); err == nil {
		e.initramfs = true
	}
	if b, err := root.ReadFile("usr/lib/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				e.title = strings.Trim(v, `"'`) + " (" + ver + ")"
			}
		}
	}
	kd, err := fs.ReadDir(root.FS(), "usr/lib/bootc/kargs.d")
	if err == nil {
		arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
		for _, k := range kd {
			if !strings.HasSuffix(k.Name(), ".toml") {
				continue
			}
			b, err := root.ReadFile(path.Join("usr/lib/bootc/kargs.d", k.Name()))
			if err != nil {
				return bootEntry{}, err
			}
			e.kargs = append(e.kargs, tomlKargs(string(b), arch)...)
		}
	}
	return e, nil
}

// bootcFinishRoot writes what the installed system needs to mount itself
// (fstab: the root and the ESP at /boot/efi, unless the image's fstab
// names them), and asks an SELinux system to relabel on first boot:
// layers carry no labels for this filesystem.
func bootcFinishRoot(root *os.Root, rootUUID, espUUID string) error {
	var fstab string
	if b, err := root.ReadFile("etc/fstab"); err == nil {
		fstab = string(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	mounted := map[string]bool{}
	for _, line := range strings.Split(fstab, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			mounted[f[1]] = true
		}
	}
	if fstab != "" && !strings.HasSuffix(fstab, "\n") {
		fstab += "\n"
	}
	if !mounted["/"] {
		fstab += fmt.Sprintf("UUID=%s\t/\text4\tdefaults\t1 1\n", rootUUID)
	}
	if !mounted["/boot/efi"] && espUUID != "" {
		fstab += fmt.Sprintf("UUID=%s\t/boot/efi\tvfat\tumask=0077,shortname=winnt\t0 2\n", espUUID)
		if err := root.MkdirAll("boot/efi", 0o755); err != nil {
			return err
		}
	}
	if err := root.MkdirAll("etc", 0o755); err != nil {
		return err
	}
	if err := root.WriteFile("etc/fstab", []byte(fstab), 0o644); err != nil {
		return err
	}
	if _, err := root.Stat("etc/selinux/config"); err == nil {
		if err := root.WriteFile(".autorelabel", nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// efiSources are where a bootc image keeps its UEFI loaders: bootupd's
// update payload, the newer /usr/lib/efi/<component>/<version>/EFI
// layout, and an image's own /boot/efi.
var efiSources = []string{"usr/lib/bootupd/updates/EFI", "usr/lib/efi", "boot/efi/EFI"}

// populateESP copies the image's EFI tree, kernel and initramfs onto
// the ESP (FAT32, written in Go: no vfat needed), with a grub.cfg beside
// every grub*.efi and a BLS entry for systemd-boot.
func populateESP(root *os.Root, device string, esp disk.Partition, entry bootEntry, espUUID string) error {
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sector := 512
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		sector = n
	}
	fat, err := fat32.Read(file.New(f, false), esp.Size, esp.Start, int64(sector))
	if err != nil {
		return err
	}
	w := &espWriter{fat: fat, dirs: map[string]bool{"/": true}}
	// Loaders: every file under each EFI source, first source winning.
	loaders := 0
	var grubDirs []string
	for _, s := range efiSources {
		err := fs.WalkDir(root.FS(), s, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fs.SkipDir
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel := strings.TrimPrefix(p, s)
			if s == "usr/lib/efi" {
				// usr/lib/efi/<component>/<version>/EFI/...
				i := strings.Index(p, "/EFI/")
				if i < 0 {
					return nil
				}
				rel = p[i+len("/EFI"):]
			}
			dst := "/EFI" + rel
			if w.has(dst) {
				return nil
			}
			if err := w.copyFrom(root, p, dst); err != nil {
				return err
			}
			base := strings.ToLower(path.Base(dst))
			if strings.HasSuffix(base, ".efi") {
				loaders++
			}
			if strings.HasPrefix(base, "grub") && strings.HasSuffix(base, ".efi") {
				grubDirs = append(grubDirs, path.Dir(dst))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("copying the loaders from /%s: %w", s, err)
		}
	}
	if loaders == 0 {
		// No shim or grub: systemd-boot, if the image has it.
		sdboot := "usr/lib/systemd/boot/efi/systemd-boot" + map[string]string{"amd64": "x64", "arm64": "aa64"}[runtime.GOARCH] + ".efi"
		if _, err := root.Stat(sdboot); err != nil {
			return &InvalidImageError{
				Details: "the container image carries no UEFI boot loader (/usr/lib/bootupd/updates/EFI, /usr/lib/efi, /boot/efi or systemd-boot)"}
		}
		fallback := "/EFI/BOOT/BOOT" + strings.ToUpper(map[string]string{"amd64": "x64", "arm64": "aa64"}[runtime.GOARCH]) + ".EFI"
		if err := w.copyFrom(root, sdboot, fallback); err != nil {
			return err
		}
	}
	mod := path.Join("usr/lib/modules", entry.kernelVer)
	if err := w.copyFrom(root, mod+"/vmlinuz", "/vmlinuz-"+entry.kernelVer); err != nil {
		return err
	}
	if entry.initramfs {
		if err := w.copyFrom(root, mod+"/initramfs.img", "/initramfs-"+entry.kernelVer+".img"); err != nil {
			return err
		}
	}
	for _, dir := range grubDirs {
		if err := w.write(dir+"/grub.cfg", []byte(entry.grubConfig(espUUID))); err != nil {
			return err
		}
	}
	if err := w.write("/loader/loader.conf", []byte("timeout 3\n")); err != nil {
		return err
	}
	if err := w.write("/loader/entries/bootc-"+entry.kernelVer+".conf", []byte(entry.blsEntry())); err != nil {
		return err
	}
	return f.Sync()
}

// espWriter writes files into a go-diskfs FAT32 filesystem.
type espWriter struct {
	fat   *fat32.FileSystem
	dirs  map[string]bool
	files map[string]bool
}

func (w *espWriter) has(p string) bool { return w.files[strings.ToLower(p)] }

func (w *espWriter) mkdirs(dir string) error {
	if w.dirs[dir] {
		return nil
	}
	if err := w.mkdirs(path.Dir(dir)); err != nil {
		return err
	}
	if err := w.fat.Mkdir(dir); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	w.dirs[dir] = true
	return nil
}

func (w *espWriter) create(p string) (io.WriteCloser, error) {
	if err := w.mkdirs(path.Dir(p)); err != nil {
		return nil, err
	}
	out, err := w.fat.OpenFile(p, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if w.files == nil {
		w.files = map[string]bool{}
	}
	w.files[strings.ToLower(p)] = true
	return out, nil
}

func (w *espWriter) write(p string, b []byte) error {
	out, err := w.create(p)
	if err != nil {
		return err
	}
	if _, err := out.Write(b); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", p, err)
	}
	return out.Close()
}

// copyFrom copies one file in large writes: go-diskfs updates the FAT
// on every write, so few big ones are much faster than many small ones.
func (w *espWriter) copyFrom(root *os.Root, src, dst string) error {
	in, err := root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := w.create(dst)
	if err != nil {
		return err
	}
	buf := make([]byte, 8<<20)
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf); err != nil {
		out.Close()
		if strings.Contains(err.Error(), "space") {
			return fmt.Errorf("%s: the EFI system partition is full: %w", dst, err)
		}
		return fmt.Errorf("%s: %w", dst, err)
	}
	return out.Close()
}
