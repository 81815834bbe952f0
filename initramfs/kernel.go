// Package initramfs builds goipa's ramdisk: a reproducible compressed
// cpio with goipa as /init and the kernel modules real servers need,
// taken from a Debian kernel package. It runs at build time only; what
// runs in the ramdisk is in initramfs/boot.
package initramfs

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is an unpacked kernel: its image and its modules.
type Kernel struct {
	Version    string // uname -r, e.g. 6.1.0-28-cloud-amd64
	Vmlinuz    string
	ModulesDir string // .../lib/modules/<Version>
	Arch       string // ELF machine of the modules: amd64 or arm64
}

// ServerModules are the storage and NIC drivers real servers need:
// Broadcom/LSI (megaraid_sas, mpt3sas, mpi3mr), Microchip/Adaptec
// (smartpqi, aacraid), HPE (hpsa), Fibre Channel HBAs (qla2xxx, lpfc);
// Intel (e1000, e1000e, igb, igc, ixgbe, ixgbevf, i40e, iavf, ice),
// Mellanox (mlx4_en, mlx5_core), Broadcom (tg3, bnx2x, bnxt_en), QLogic
// FastLinQ (qede, qed), Emulex (be2net), Chelsio (cxgb4), Netronome
// (nfp), Solarflare (sfc), Realtek (r8169). Their firmware comes from
// FirmwarePackages.
var ServerModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_rng", "sd_mod", "nvme", "ahci",
	"megaraid_sas", "mpt3sas", "mpi3mr", "smartpqi", "hpsa", "aacraid", "qla2xxx", "lpfc",
	"ixgbe", "ixgbevf", "i40e", "iavf", "ice", "mlx4_en", "mlx5_core", "bnxt_en", "bnx2x", "tg3", "igb", "igc", "e1000e", "sfc", "e1000",
	"qede", "qed", "be2net", "cxgb4", "nfp", "r8169",
	"8021q", "efivarfs",
	"ipmi_si", "ipmi_ssif", "ipmi_devintf", // IPMIModules and the BMC on SMBus
	"md_mod", "raid0", "raid1", // MDModules
	"dm_mod", "dm_multipath", "dm_service_time", // MultipathModules
	"ext4", // FSModules
	// VMediaModules: Ironic's boot ISO and floppy on a BMC's virtual CD
	// or USB stick, and bonds and VLANs from network_data.json.
	"sr_mod", "cdrom", "isofs", "vfat", "nls_cp437", "nls_ascii",
	"usb_storage", "uas", "xhci_pci", "ehci_pci", "bonding",
}

// VMediaModules read what Ironic hands a virtual-media boot (the CD or
// USB stick, ISO 9660 or the FAT floppy with the codepage and charset
// Debian's FAT defaults ask for) and build what its network_data.json
// can ask for (bonds; VLANs need 8021q, already in every set). The
// filesystems, charsets and bonding are asked for by no modalias, so
// init loads them by name. QEMU's sets leave out
// USB, which Debian's cloud kernel lacks, and add ata_piix for QEMU's
// IDE CD drive.
var VMediaModules = []string{"sr_mod", "cdrom", "isofs", "vfat", "nls_cp437", "nls_ascii", "usb_storage", "uas", "xhci_pci", "ehci_pci", "bonding", "8021q"}

// DeclaresFirmware reports whether the modules named (with their
// dependencies), or all of the kernel's, declare any firmware: only then
// is it worth fetching FirmwarePackages.
func DeclaresFirmware(k *Kernel, names []string, all bool) (bool, error) {
	mods, builtin, err := ScanModules(k.ModulesDir)
	if err != nil {
		return false, err
	}
	if all {
		names = nil
		for n := range mods {
			names = append(names, n)
		}
	}
	chosen, _ := Closure(mods, builtin, names)
	for _, m := range chosen {
		if len(m.Firmware) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// IPMIModules reach the BMC: its system interface (KCS, BT or SMIC found
// by ACPI or SMBIOS) and /dev/ipmi0, which the inventory asks for the
// BMC's addresses. Debian's cloud kernel has no IPMI.
var IPMIModules = []string{"ipmi_si", "ipmi_devintf"}

// VirtioModules are enough for a QEMU guest.
var VirtioModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_rng", "sd_mod", "nvme", "8021q", "efivarfs", "md_mod", "raid0", "raid1", "ext4",
	"dm_mod", "dm_multipath", "dm_service_time",
	"ata_piix", "sr_mod", "cdrom", "isofs", "vfat", "nls_cp437", "nls_ascii", "bonding"}

// MDModules are the software RAID driver and the levels goipa builds
// (mdraid); no device asks for them, so init loads them by name.
var MDModules = []string{"md_mod", "raid0", "raid1"}

// MultipathModules are device-mapper, its multipath target and the
// service-time path selector of the maps goipa assembles
// (disk.AssembleMultipath); no device asks for them, so init loads them
// by name.
var MultipathModules = []string{"dm_mod", "dm_multipath", "dm_service_time"}

// FSModules are the filesystems goipa mounts to write into (a bootc
// deploy's root, inject_files, grub-install's chroot); the FAT of an
// ESP is read and written in Go. No device asks for them, so init loads
// them by name.
var FSModules = []string{"ext4"}

// ARM64ServerModules are the storage and NIC drivers of arm64 servers
// (Ampere, ThunderX, Kunpeng, Graviton-like boards): ThunderX's NICs are
// nicvf, nicpf and thunder_bgx, Kunpeng's hns3.
var ARM64ServerModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "virtio_rng", "sd_mod", "nvme", "ahci",
	"megaraid_sas", "mpt3sas", "smartpqi",
	"ixgbe", "i40e", "ice", "mlx5_core", "bnxt_en", "igb", "tg3", "hns3", "nicvf", "nicpf", "thunder_bgx",
	"8021q", "efivarfs",
	"ipmi_si", "ipmi_ssif", "ipmi_devintf",
	"md_mod", "raid0", "raid1",
	"dm_mod", "dm_multipath", "dm_service_time",
	"ext4",
	"sr_mod", "cdrom", "isofs", "vfat", "nls_cp437", "nls_ascii",
	"usb_storage", "uas", "xhci_pci", "ehci_pci", "bonding",
}

// ServerModulesFor is the server driver set of a ramdisk architecture.
func ServerModulesFor(arch string) []string {
	if arch == "arm64" {
		return ARM64ServerModules
	}
	return ServerModules
}

// DebianKernelPackage resolves a meta package (linux-image-amd64,
// linux-image-cloud-amd64, linux-image-arm64) to the versioned package it
// depends on now: old ABIs leave the mirror, so it is never pinned. A
// foreign arch is resolved in its own apt state (AptOptions).
func DebianKernelPackage(ctx context.Context, meta string, arch string) (string, error) {
	if err := checkKernelPackageName(meta, arch); err != nil {
		return "", err
	}
	opts, err := AptOptions(ctx, arch, false)
	if err != nil {
		return "", err
	}
	pkg, err := resolveKernelPackage(ctx, meta, opts)
	if err == nil {
		return pkg, nil
	}
	// A machine whose package lists are missing or stale: refresh once.
	if foreign(arch) {
		if opts, err = AptOptions(ctx, arch, true); err != nil {
			return "", err
		}
	} else if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
		return "", fmt.Errorf("%v (and apt-get update failed: %v: %s)", err, uerr, out)
	}
	pkg, err = resolveKernelPackage(ctx, meta, opts)
	if err != nil && arch != "" {
		return "", fmt.Errorf("%s: no such kernel package for %s in Debian's lists (%v)", meta, arch, err)
	}
	return pkg, err
}

// checkKernelPackageName refuses a kernel package whose name says it is
// for another architecture (Debian's flavours end in it:
// linux-image-cloud-amd64, linux-image-6.1.0-28-arm64).
func checkKernelPackageName(pkg, arch string) error {
	if arch == "" {
		return nil
	}
	for _, a := range []string{"amd64", "arm64"} {
		if a != arch && strings.HasSuffix(pkg, "-"+a) {
			return &ArchError{What: "kernel package " + pkg, Want: arch, Got: a}
		}
	}
	return nil
}

func resolveKernelPackage(ctx context.Context, meta string, opts []string) (string, error) {
	args := append(append([]string{}, opts...), "depends", meta)
	out, err := exec.CommandContext(ctx, "apt-cache", args...).Output()
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
				return f[1], nil
			}
		}
	}
	return "", fmt.Errorf("cannot resolve %s with apt-cache: %v", meta, err)
}

// FetchDebianKernel downloads a Debian linux-image package with apt-get
// download into cacheDir (once) and unpacks it. With ForArch, a package
// or kernel of another architecture is refused with an *ArchError.
func FetchDebianKernel(ctx context.Context, cacheDir, pkg string, opts ...FetchOption) (*Kernel, error) {
	c := fetchConfigOf(opts)
	if err := checkKernelPackageName(pkg, c.arch); err != nil {
		return nil, err
	}
	cacheDir = archCacheDir(cacheDir, c.arch)
	k, err := KernelFromDir(filepath.Join(cacheDir, pkg))
	if err != nil {
		dir, uerr := unpackDebianPackage(ctx, cacheDir, pkg, c)
		if uerr != nil {
			return nil, uerr
		}
		if k, err = KernelFromDir(dir); err != nil {
			return nil, err
		}
	}
	if c.arch != "" && k.Arch != c.arch {
		return nil, &ArchError{What: "kernel " + k.Version + " (package " + pkg + ")", Want: c.arch, Got: k.Arch}
	}
	return k, nil
}

// FetchDebianPackage downloads a Debian package with apt-get download
// into cacheDir (once) and returns the directory it is unpacked in.
func FetchDebianPackage(ctx context.Context, cacheDir, pkg string, opts ...FetchOption) (string, error) {
	c := fetchConfigOf(opts)
	cacheDir = archCacheDir(cacheDir, c.arch)
	dir := filepath.Join(cacheDir, pkg)
	if _, err := os.Stat(filepath.Join(dir, ".goipa-unpacked")); err == nil {
		return dir, nil
	}
	dir, err := unpackDebianPackage(ctx, cacheDir, pkg, c)
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, ".goipa-unpacked"), nil, 0o644)
}

// archCacheDir keeps a foreign architecture's packages apart: many have
// the same name on every architecture (systemd-boot-efi).
func archCacheDir(cacheDir, arch string) string {
	if foreign(arch) {
		return filepath.Join(cacheDir, arch)
	}
	return cacheDir
}

func unpackDebianPackage(ctx context.Context, cacheDir, pkg string, c fetchConfig) (string, error) {
	arch := c.arch
	dest := filepath.Join(cacheDir, pkg)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	var aptOpts []string
	var err error
	if c.nonFreeFirmware {
		aptOpts, err = firmwareAptOptions(ctx, false)
	} else {
		aptOpts, err = AptOptions(ctx, arch, false)
	}
	if err != nil {
		return "", err
	}
	dl := exec.CommandContext(ctx, "apt-get", append(append([]string{}, aptOpts...), "download", pkg)...)
	dl.Dir = cacheDir
	if out, err := dl.CombinedOutput(); err != nil {
		if arch != "" {
			return "", fmt.Errorf("apt-get download %s for %s: %v: %s", pkg, arch, err, out)
		}
		return "", fmt.Errorf("apt-get download %s: %v: %s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(cacheDir, pkg+"_*.deb"))
	if len(debs) == 0 {
		return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, cacheDir)
	}
	deb := debs[len(debs)-1]
	if arch != "" {
		got, err := debArch(ctx, deb)
		if err != nil {
			return "", err
		}
		if got != arch && got != "all" {
			return "", &ArchError{What: "package " + filepath.Base(deb), Want: arch, Got: got}
		}
	}
	tmp := dest + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpacking %s: %v: %s", deb, err, out)
	}
	os.RemoveAll(dest)
	if err := os.Rename(tmp, dest); err != nil {
		return "", err
	}
	return dest, nil
}

// KernelFromDir finds boot/vmlinuz-<ver> and lib/modules/<ver> in an
// unpacked kernel package (or a directory laid out alike).
func KernelFromDir(dir string) (*Kernel, error) {
	imgs, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(imgs) != 1 {
		return nil, fmt.Errorf("%s: want exactly one boot/vmlinuz-*, found %d", dir, len(imgs))
	}
	ver := strings.TrimPrefix(filepath.Base(imgs[0]), "vmlinuz-")
	mods := filepath.Join(dir, "lib", "modules", ver)
	if _, err := os.Stat(mods); err != nil {
		mods = filepath.Join(dir, "usr", "lib", "modules", ver)
		if _, err := os.Stat(mods); err != nil {
			return nil, fmt.Errorf("%s: no modules directory for %s", dir, ver)
		}
	}
	k := &Kernel{Version: ver, Vmlinuz: imgs[0], ModulesDir: mods}
	k.Arch = moduleArch(mods)
	return k, nil
}

func moduleArch(dir string) string {
	arch := ""
	filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || arch != "" || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		if f, err := elf.Open(p); err == nil {
			switch f.Machine {
			case elf.EM_X86_64:
				arch = "amd64"
			case elf.EM_AARCH64:
				arch = "arm64"
			default:
				arch = f.Machine.String()
			}
			f.Close()
		}
		return fs.SkipAll
	})
	return arch
}

// Module is one kernel module file.
type Module struct {
	Name     string // e.g. virtio_rng
	Rel      string // path under lib/modules/<ver>
	Deps     []string
	Aliases  []string
	Firmware []string // files it may ask the firmware loader for, under lib/firmware
	Vermagic string   // the kernel it was built for (release and build options)
	// Src is the file of a module from outside the kernel package
	// (ExtraModules); "" for the kernel's own, at Rel under its modules.
	Src string
}

func modName(p string) string {
	b := filepath.Base(p)
	if !strings.HasSuffix(b, ".ko") {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// ScanModules reads every module's .modinfo (depends= and alias=): the
// package has no modules.dep or modules.alias, which depmod would make.
func ScanModules(modDir string) (map[string]*Module, map[string]bool, error) {
	mods := map[string]*Module{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := modName(p)
		if name == "" {
			return nil
		}
		rel, _ := filepath.Rel(modDir, p)
		m := &Module{Name: name, Rel: rel}
		if err := readModinfo(p, m); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		mods[name] = m
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if n := modName(l); n != "" {
				builtin[n] = true
			}
		}
	}
	return mods, builtin, nil
}

func readModinfo(path string, m *Module) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return errors.New("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					m.Deps = append(m.Deps, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case "alias":
			m.Aliases = append(m.Aliases, v)
		case "firmware":
			m.Firmware = append(m.Firmware, v)
		case "vermagic":
			m.Vermagic = v
		case "name":
			if v != "" {
				m.Name = strings.ReplaceAll(v, "-", "_")
			}
		}
	}
	return nil
}

// MissingModulesError names modules asked for that the kernel has
// neither as a file nor built in.
type MissingModulesError struct {
	Kernel  string
	Missing []string
}

func (e *MissingModulesError) Error() string {
	return fmt.Sprintf("kernel %s has no module %s (neither a .ko file nor built in)", e.Kernel, strings.Join(e.Missing, ", "))
}

// Closure returns the modules named and everything they depend on,
// dependencies first, skipping built-in ones.
func Closure(mods map[string]*Module, builtin map[string]bool, names []string) ([]*Module, []string) {
	var out []*Module
	var missing []string
	seen := map[string]bool{}
	var visit func(n string, stack map[string]bool)
	visit = func(n string, stack map[string]bool) {
		n = strings.ReplaceAll(n, "-", "_")
		if seen[n] || stack[n] {
			return
		}
		m, ok := mods[n]
		if !ok {
			if !builtin[n] {
				missing = append(missing, n)
			}
			seen[n] = true
			return
		}
		stack[n] = true
		for _, d := range m.Deps {
			visit(d, stack)
		}
		delete(stack, n)
		seen[n] = true
		out = append(out, m)
	}
	for _, n := range names {
		visit(n, map[string]bool{})
	}
	sort.Strings(missing)
	return out, missing
}

// CacheDir is where downloaded kernel packages are kept between builds:
// $GOIPA_CACHE, else the user's cache directory.
func CacheDir() string {
	if d := os.Getenv("GOIPA_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "/var/cache/goipa"
	}
	return filepath.Join(d, "goipa")
}
