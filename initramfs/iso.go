package initramfs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// ISOOptions describe a bootable ISO for BMC virtual media.
type ISOOptions struct {
	Kernel, Initrd string // the ramdisk to boot
	Cmdline        string // kernel parameters (ipa-api-url=... and friends)
	Output         string
	// CacheDir keeps the Debian boot loader packages between builds.
	CacheDir string
	// Arch is the ramdisk's architecture: amd64 (default: BIOS and UEFI)
	// or arm64 (UEFI only, systemd-boot from the arm64 systemd-boot-efi
	// package as BOOTAA64.EFI, console on ttyAMA0).
	Arch string
}

// ISOResult describes a built ISO.
type ISOResult struct {
	Path   string
	Size   int64
	SHA256 string
}

// Names are lower case: ISOLINUX reads the Rock Ridge names, and
// compares them case-sensitively. Boot loaders come from Debian packages, fetched like the kernel:
// ISOLINUX for BIOS, systemd-boot for UEFI (it reads a kernel, an
// initramfs and a command line from the FAT image firmware boots).
var isoLoaders = []struct{ pkg, path, dst string }{
	{"isolinux", "usr/lib/ISOLINUX/isolinux.bin", "isolinux/isolinux.bin"},
	{"syslinux-common", "usr/lib/syslinux/modules/bios/ldlinux.c32", "isolinux/ldlinux.c32"},
	{"systemd-boot-efi", "usr/lib/systemd/boot/efi/systemd-bootx64.efi", ""},
}

// arm64ISOLoaders: arm64 servers boot UEFI only.
var arm64ISOLoaders = []struct{ pkg, path, dst string }{
	{"systemd-boot-efi", "usr/lib/systemd/boot/efi/systemd-bootaa64.efi", ""},
}

// BuildISO writes an ISO9660 image that boots the kernel and initramfs
// on BIOS (El Torito, ISOLINUX) and UEFI (an El Torito EFI System
// Partition image holding systemd-boot, the kernel and the initramfs),
// for BMCs that mount an ISO as virtual media.
func BuildISO(ctx context.Context, o ISOOptions) (*ISOResult, error) {
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(CacheDir(), "packages")
	}
	if strings.ContainsAny(o.Cmdline, "\n\r") {
		return nil, fmt.Errorf("kernel parameters must be one line")
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	arm := o.Arch == "arm64"
	if !arm && o.Arch != "amd64" {
		return nil, fmt.Errorf("no ISO for %s (amd64 or arm64)", o.Arch)
	}
	pkgs := isoLoaders
	if arm {
		pkgs = arm64ISOLoaders
	}
	loaders := map[string]string{}
	for _, l := range pkgs {
		dir, err := FetchDebianPackage(ctx, o.CacheDir, l.pkg, ForArch(o.Arch))
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, l.path)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("package %s has no %s: %w", l.pkg, l.path, err)
		}
		loaders[l.pkg] = p
	}
	work, err := os.MkdirTemp("", "goipa-iso-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	cmdline := "console=tty0 console=ttyS0 " + o.Cmdline
	bootName := "/EFI/BOOT/BOOTX64.EFI"
	if arm {
		cmdline = "console=tty0 console=ttyAMA0 " + o.Cmdline
		bootName = "/EFI/BOOT/BOOTAA64.EFI"
	}
	files := map[string]string{"boot/vmlinuz": o.Kernel, "boot/initrd.img": o.Initrd}
	if arm {
		// UEFI firmware reads the ESP image alone: no second copy.
		files = map[string]string{}
	}
	for _, l := range pkgs {
		if l.dst != "" {
			files[l.dst] = loaders[l.pkg]
		}
	}
	for dst, src := range files {
		if err := copyInto(filepath.Join(tree, dst), src); err != nil {
			return nil, err
		}
	}
	if !arm {
		cfg := "DEFAULT goipa\nPROMPT 0\nTIMEOUT 0\nLABEL goipa\n  KERNEL /boot/vmlinuz\n  APPEND initrd=/boot/initrd.img " + cmdline + "\n"
		if err := os.WriteFile(filepath.Join(tree, "isolinux/isolinux.cfg"), []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	espPath := filepath.Join(tree, "efi/efiboot.img")
	if err := buildESP(espPath, loaders["systemd-boot-efi"], bootName, o.Kernel, o.Initrd, cmdline); err != nil {
		return nil, fmt.Errorf("EFI boot image: %w", err)
	}
	var total int64
	for _, p := range []string{o.Kernel, o.Initrd, espPath} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		total += st.Size()
	}
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return nil, err
	}
	os.Remove(o.Output)
	b, err := file.CreateFromPath(o.Output, total+8<<20)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	iso, err := iso9660.Create(b, 0, 0, 2048, tree)
	if err != nil {
		return nil, err
	}
	torito := &iso9660.ElTorito{
		BootCatalog: "/isolinux/boot.cat",
		Entries: []*iso9660.ElToritoEntry{
			{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation, BootFile: "/isolinux/isolinux.bin", BootTable: true, LoadSegment: 0},
			{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation, BootFile: "/efi/efiboot.img"},
		},
	}
	if arm {
		torito = &iso9660.ElTorito{BootCatalog: "/efi/boot.cat", Entries: torito.Entries[1:]}
	}
	err = iso.Finalize(iso9660.FinalizeOptions{VolumeIdentifier: "GOIPA", RockRidge: true, ElTorito: torito})
	if err != nil {
		return nil, fmt.Errorf("writing the ISO: %w", err)
	}
	if err := trimISO(o.Output); err != nil {
		return nil, err
	}
	return hashFile(o.Output)
}

// buildESP makes the FAT image UEFI firmware boots from the CD:
// systemd-boot as the removable-media loader (bootName), with one entry.
func buildESP(path, bootEFI, bootName, kernel, initrd, cmdline string) error {
	var size int64 = 8 << 20
	for _, p := range []string{bootEFI, kernel, initrd} {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		size += st.Size()
	}
	// FAT32 wants at least 65525 clusters (firmware tells FAT widths
	// apart by cluster count); 40 MiB of 512-byte clusters has them.
	size = max(size+size/8, 40<<20)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := file.CreateFromPath(path, size)
	if err != nil {
		return err
	}
	defer b.Close()
	fs, err := fat32.Create(b, size, 0, 512, "GOIPA-EFI", true)
	if err != nil {
		return err
	}
	for _, d := range []string{"/EFI", "/EFI/BOOT", "/loader", "/loader/entries"} {
		if err := fs.Mkdir(d); err != nil {
			return err
		}
	}
	entry := "title goipa\nlinux /vmlinuz\ninitrd /initrd.img\noptions " + cmdline + "\n"
	for dst, src := range map[string]any{
		bootName:                     bootEFI,
		"/vmlinuz":                   kernel,
		"/initrd.img":                initrd,
		"/loader/loader.conf":        []byte("default goipa.conf\ntimeout 0\n"),
		"/loader/entries/goipa.conf": []byte(entry),
	} {
		w, err := fs.OpenFile(dst, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		switch v := src.(type) {
		case string:
			r, err := os.Open(v)
			if err != nil {
				w.Close()
				return err
			}
			_, err = io.Copy(w, r)
			r.Close()
			if err != nil {
				w.Close()
				return fmt.Errorf("%s: %w", dst, err)
			}
		case []byte:
			if _, err := w.Write(v); err != nil {
				w.Close()
				return fmt.Errorf("%s: %w", dst, err)
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// trimISO cuts the file to the volume's own size (the primary volume
// descriptor's volume space size), dropping the slack it was created with.
func trimISO(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	pvd := make([]byte, 88)
	if _, err := f.ReadAt(pvd, 16*2048); err != nil {
		return err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return fmt.Errorf("%s: no primary volume descriptor", p)
	}
	blocks := int64(binary.LittleEndian.Uint32(pvd[80:84]))
	if st, err := f.Stat(); err != nil || blocks*2048 >= st.Size() {
		return err
	}
	return f.Truncate(blocks * 2048)
}

func copyInto(dst, src string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func hashFile(p string) (*ISOResult, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	return &ISOResult{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
