package initramfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// IronicGrubConfigPath is where Ironic writes the grub.cfg of the UEFI
// ISOs it builds: its [DEFAULT] grub_config_path, default
// EFI/BOOT/grub.cfg, on the ISO 9660 file system beside /vmlinuz and
// /initrd (not inside the ESP image).
const IronicGrubConfigPath = "/EFI/BOOT/grub.cfg"

// ESPOptions describe the EFI System Partition image Ironic embeds in the
// UEFI ISOs it builds from deploy_kernel and deploy_ramdisk: the node's
// driver_info bootloader, or Ironic's [DEFAULT] esp_image.
type ESPOptions struct {
	Output string
	// CacheDir keeps the Debian GRUB packages between builds.
	CacheDir string
	// GrubConfigPath is Ironic's [DEFAULT] grub_config_path; empty:
	// IronicGrubConfigPath.
	GrubConfigPath string
}

// grubModules are what Ironic's grub.cfg needs (linuxefi and initrdefi,
// the menu's commands) and what the embedded configuration uses to find
// it on the CD: ISO 9660 for the CD, FAT for the ESP, the partition
// tables a disk GRUB scans on its way may carry.
var grubModules = []string{
	"normal", "configfile", "echo", "test", "ls", "cat", "sleep", "reboot", "halt",
	"linux", "linuxefi", "gzio", "xzio",
	"search", "search_fs_file", "search_label", "search_fs_uuid",
	"iso9660", "fat", "part_gpt", "part_msdos", "disk",
	"efi_gop", "efi_uga", "all_video", "video_bochs", "video_cirrus",
}

// grubEmbeddedConfig finds Ironic's grub.cfg on the CD and reads it. GRUB
// runs an embedded configuration with its rescue parser (no if, no
// functions: every line runs), so it is straight-line: search for the
// file, the first CD first (where the firmware booted this ESP from when
// it came from virtual media), then the rest; $root and $prefix then
// point at the CD, which Ironic's /vmlinuz and /initrd are relative to.
// If nothing holds the file, configfile fails and GRUB's prompt stays.
func grubEmbeddedConfig(cfgPath string) string {
	return fmt.Sprintf(`search --no-floppy --file --set=root --hint=cd0 %s
set prefix=($root)%s
configfile ($root)%s
`, cfgPath, filepath.Dir(cfgPath), cfgPath)
}

// BuildESP writes a FAT image holding GRUB (from Debian's grub-common
// and grub-efi-amd64-bin, with linuxefi) as EFI/BOOT/BOOTX64.EFI. It is
// what Ironic's UEFI ISOs need as `bootloader`: Ironic copies it into the
// ISO as the El Torito EFI image and writes a grub.cfg beside the kernel
// that uses linuxefi/initrdefi, which systemd-boot (goipa's own ISO) has
// no use for. The image is FAT12/16 made by mkfs.vfat and mcopy (the
// tools Ironic's conductor itself needs): El Torito counts an image's
// sectors in 16 bits, so a FAT32 image (32 MiB at least) would be cut.
func BuildESP(ctx context.Context, o ESPOptions) (*ISOResult, error) {
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(CacheDir(), "packages")
	}
	if o.GrubConfigPath == "" {
		o.GrubConfigPath = IronicGrubConfigPath
	}
	if !strings.HasPrefix(o.GrubConfigPath, "/") {
		o.GrubConfigPath = "/" + o.GrubConfigPath
	}
	if strings.ContainsAny(o.GrubConfigPath, " \t\n\"'$;") {
		return nil, fmt.Errorf("grub config path %q: no blanks, quotes or $ in it", o.GrubConfigPath)
	}
	for _, tool := range []string{"mkfs.vfat", "mmd", "mcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("the ESP image needs %s (Debian: dosfstools, mtools): %w", tool, err)
		}
	}
	// grub-mkimage runs on this machine: the amd64 package.
	common, err := FetchDebianPackage(ctx, o.CacheDir, "grub-common", ForArch("amd64"))
	if err != nil {
		return nil, err
	}
	efiBin, err := FetchDebianPackage(ctx, o.CacheDir, "grub-efi-amd64-bin", ForArch("amd64"))
	if err != nil {
		return nil, err
	}
	mkimage := filepath.Join(common, "usr/bin/grub-mkimage")
	modDir := filepath.Join(efiBin, "usr/lib/grub/x86_64-efi")
	for _, p := range []string{mkimage, filepath.Join(modDir, "linuxefi.mod")} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("GRUB packages: %w", err)
		}
	}
	work, err := os.MkdirTemp("", "goipa-esp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cfg := filepath.Join(work, "embedded.cfg")
	if err := os.WriteFile(cfg, []byte(grubEmbeddedConfig(o.GrubConfigPath)), 0o644); err != nil {
		return nil, err
	}
	bootEFI := filepath.Join(work, "BOOTX64.EFI")
	args := append([]string{"-O", "x86_64-efi", "-d", modDir, "-c", cfg, "-p", filepath.Dir(o.GrubConfigPath), "-o", bootEFI}, grubModules...)
	if out, err := exec.CommandContext(ctx, mkimage, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("grub-mkimage: %w: %s", err, out)
	}
	st, err := os.Stat(bootEFI)
	if err != nil {
		return nil, err
	}
	// Room for the FAT and directories, in KiB as mkfs.vfat counts.
	kib := (st.Size()+1023)/1024 + 512
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return nil, err
	}
	tmp := o.Output + ".tmp"
	os.Remove(tmp)
	defer os.Remove(tmp)
	steps := [][]string{
		{"mkfs.vfat", "-C", "-n", "GOIPA-ESP", tmp, fmt.Sprint(kib)},
		{"mmd", "-i", tmp, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", tmp, bootEFI, "::/EFI/BOOT/BOOTX64.EFI"},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		// mtools refuses an image whose geometry it cannot guess unless told not to check.
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", s[0], err, out)
		}
	}
	if err := os.Rename(tmp, o.Output); err != nil {
		return nil, err
	}
	return hashFile(o.Output)
}
