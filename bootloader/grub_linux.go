package bootloader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/mdraid"
	"github.com/goipa/goipa/raid"
)

// bootloaderPresent is IPA's "already marked bootable" check for BIOS: a
// bootable-flagged partition on a disk whose MBR carries boot code.
func bootloaderPresent(device string, table disk.Table) bool {
	f, err := os.Open(device)
	if err != nil {
		return false
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return false
	}
	code := false
	for _, b := range mbr[:440] {
		if b != 0 {
			code = true
			break
		}
	}
	if !code {
		return false
	}
	for _, p := range table.Partitions {
		if p.Bootable || strings.EqualFold(p.TypeGUID, ESPType) {
			return true
		}
	}
	return false
}

// grubTargets is where BIOS grub-install writes: the disk, or for an md
// array the whole disks under its members.
func grubTargets(device string) []string {
	if !raid.IsArrayName(device) {
		return []string{device}
	}
	arrays, err := mdraid.Arrays()
	if err != nil {
		return []string{device}
	}
	var out []string
	for _, ar := range arrays {
		if ar.Device == device {
			for _, m := range ar.Members {
				if h := mdraid.HolderDisk(m); !slices.Contains(out, h) {
					out = append(out, h)
				}
			}
		}
	}
	if len(out) == 0 {
		return []string{device}
	}
	sort.Strings(out)
	return out
}

// Grub says where the image's grub goes: the root partition's and the
// ESP's UUIDs (PARTUUID or filesystem UUID; ESPUUID "" for BIOS) and the
// ramdisk's boot mode ("uefi" or "bios").
type Grub struct {
	RootUUID, ESPUUID, BootMode string
}

// InstallGrub runs the image's own grub-install and grub-mkconfig in a
// chroot of its root partition on device, as IPA's _install_grub2 does
// (without PReP).
func InstallGrub(ctx context.Context, device string, p Grub, log *slog.Logger) (err error) {
	table, err := disk.ReadTable(device)
	if err != nil {
		return err
	}
	root, ok := PartitionByUUID(device, table, p.RootUUID)
	if !ok {
		return fmt.Errorf("no partition on %s has the root UUID %s", device, p.RootUUID)
	}
	if p.BootMode == "bios" && p.ESPUUID == "" && bootloaderPresent(device, table) {
		log.Info("skipping the boot loader: the disk is already marked bootable and has boot code", "device", device)
		return nil
	}
	var esp disk.Partition
	uefi := false
	if p.ESPUUID != "" {
		if esp, ok = PartitionByUUID(device, table, p.ESPUUID); !ok {
			return fmt.Errorf("no partition on %s has the EFI system partition UUID %s", device, p.ESPUUID)
		}
		uefi = true
	}
	rootDev := disk.PartitionPath(device, root.Number)
	if err := disk.WaitForPartition(ctx, rootDev); err != nil {
		return err
	}
	fs, err := disk.ProbeDevice(rootDev)
	if err != nil || fs.Type == "" || fs.Type == "swap" || fs.Type == "vfat" {
		return fmt.Errorf("%s holds no Linux root filesystem (found %q)", rootDev, fs.Type)
	}
	dir, err := os.MkdirTemp("", "goipa-root-")
	if err != nil {
		return err
	}
	var mounted []string
	defer func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			if uerr := unix.Unmount(mounted[i], 0); uerr != nil {
				_ = unix.Unmount(mounted[i], unix.MNT_DETACH)
				log.Warn("unmounting", "path", mounted[i], "error", uerr)
			}
		}
		_ = os.Remove(dir)
	}()
	if err := unix.Mount(rootDev, dir, fs.Type, 0, ""); err != nil {
		return fmt.Errorf("mounting %s (%s): %w", rootDev, fs.Type, err)
	}
	mounted = append(mounted, dir)
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		target := filepath.Join(dir, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s into the image: %w", m, err)
		}
		mounted = append(mounted, target)
	}
	bin := grubBinary(dir)
	if _, err := os.Stat(filepath.Join(dir, "usr/sbin", bin+"-install")); err != nil {
		return fmt.Errorf("the image has no %s-install (usr/sbin): %w", bin, err)
	}
	run := func(script string) error {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GRUB_DISABLE_OS_PROBER=true", "LANG=C"}
		out, err := cmd.CombinedOutput()
		log.Info("in the image", "command", script, "output", strings.TrimSpace(string(out)))
		if err != nil {
			return fmt.Errorf("%s: %w: %s", script, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if uefi {
		espDev := disk.PartitionPath(device, esp.Number)
		target := filepath.Join(dir, "boot/efi")
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(espDev, target, "vfat", 0, ""); err != nil {
			return fmt.Errorf("mounting the EFI system partition %s: %w", espDev, err)
		}
		mounted = append(mounted, target)
		if err := run(bin + "-install"); err != nil {
			return err
		}
		// Also the removable-media path, for firmware that lost its NVRAM.
		if err := run(bin + "-install --removable"); err != nil {
			return err
		}
	} else {
		// On software RAID grub goes to every member disk, as IPA does,
		// so the machine boots from whichever survives.
		for _, t := range grubTargets(device) {
			if err := run(bin + "-install " + t); err != nil {
				return err
			}
		}
	}
	if err := run(bin + "-mkconfig -o /boot/" + bin + "/grub.cfg"); err != nil {
		return err
	}
	if uefi {
		return appendESPToFstab(dir, device, esp)
	}
	return nil
}

// appendESPToFstab mounts the ESP at /boot/efi in the instance, as IPA
// does, unless fstab already names /boot/efi.
func appendESPToFstab(root, device string, esp disk.Partition) error {
	fstab := filepath.Join(root, "etc/fstab")
	b, err := os.ReadFile(fstab)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "/boot/efi" && !strings.HasPrefix(f[0], "#") {
			return nil
		}
	}
	fs, err := disk.ProbeDevice(disk.PartitionPath(device, esp.Number))
	if err != nil || fs.UUID == "" {
		return fmt.Errorf("reading the EFI system partition's UUID: %v", err)
	}
	out, err := os.OpenFile(fstab, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "UUID=%s\t/boot/efi\tvfat\tumask=0077\t0\t1\n", fs.UUID); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
