package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
)

// espType is the GPT partition type of an EFI system partition; parted's
// "boot" and "esp" flags on GPT both mean this type.
const espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// bootloaderParams are image.install_bootloader's arguments (spec 4.1).
type bootloaderParams struct {
	rootUUID, efiUUID, prepUUID, target string
	ignoreFailure                       bool
}

func (d *deployer) installBootloader(ctx context.Context, c *Call) (any, error) {
	p := bootloaderParams{ignoreFailure: d.a.cfg.IgnoreBootloaderFailure}
	str := func(k string) string { s, _ := c.Params[k].(string); return s }
	p.rootUUID, p.efiUUID, p.prepUUID, p.target = str("root_uuid"), str("efi_system_part_uuid"), str("prep_boot_part_uuid"), str("target_boot_mode")
	if v, ok := c.Params["ignore_bootloader_failure"].(bool); ok {
		p.ignoreFailure = v // the API's word beats the kernel parameter, as in IPA
	}
	if p.target != "" && p.target != "uefi" && p.target != "bios" {
		return nil, ErrInvalidParams("target_boot_mode must be uefi or bios, not %q", p.target)
	}
	if p.prepUUID != "" {
		c.Log.Warn("install_bootloader: PReP partitions (ppc64) are not supported by goipa; ignoring prep_boot_part_uuid", "uuid", p.prepUUID)
	}
	device, err := d.disks.RootDisk(ctx, rootDeviceHints(d.a.Node()))
	if err != nil {
		return nil, &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto", Details: err.Error()}
	}
	current := d.a.bootMode()
	if p.target != "" && p.target != current {
		c.Log.Warn("boot mode mismatch: installing the boot loader may fail or not boot", "target", p.target, "current", current)
	}
	fail := func(err error) (any, error) {
		if p.ignoreFailure {
			c.Log.Error("install_bootloader failed; ignored as configured", "error", err)
			return nil, nil
		}
		return nil, err
	}
	if current == "uefi" {
		done, err := d.setupUEFI(ctx, c, device, p.efiUUID)
		if err != nil {
			return fail(err)
		}
		if done {
			return nil, nil
		}
	}
	switch {
	case p.rootUUID == "" || p.rootUUID == "0x00000000":
		c.Log.Info("install_bootloader: no root UUID, so a whole-disk image that brings its own boot loader; nothing to install", "device", device)
		return nil, nil
	case strings.HasPrefix(p.rootUUID, "0x") && !isMDName(device):
		// IPA would run the image's grub-install here; a whole-disk image
		// carries its boot loader, and rewriting it is not ours to do.
		c.Log.Info("install_bootloader: whole-disk image (MBR signature as root UUID) brings its own boot loader", "device", device, "root_uuid", p.rootUUID)
		return nil, nil
	case !d.a.cfg.EnableBIOSBootloaderInstall:
		// Also a whole-disk image on software RAID in BIOS mode: its boot
		// code sits inside the array, not in the members' MBRs, so only
		// the image's grub-install on every member makes it bootable (IPA
		// master refuses the same way rather than leave it unbootable).
		return fail(&Error{Type: "InvalidImage", Code: 400, Message: "Invalid image",
			Details: "Install of legacy BIOS bootloaders (the image's grub-install) is disabled; set ipa-enable-bios-bootloader-install=1 to allow it, as IPA's enable_bios_bootloader_install does"})
	}
	if err := d.installGrub(ctx, c, device, p, current); err != nil {
		return fail(&Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed",
			Details: fmt.Sprintf("Installing GRUB2 boot loader to device %s failed with %v.", device, err)})
	}
	return nil, nil
}

// bootMode is the ramdisk's own boot mode (inventory's current_boot_mode),
// except that goipa-efivars makes a host agent act as a UEFI ramdisk.
func (a *Agent) bootMode() string {
	if a.cfg.EFIVars != "" {
		return "uefi"
	}
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		return "uefi"
	}
	return "bios"
}

// efiVars is where boot entries go: goipa-efivars, the real efivarfs when
// goipa owns the machine, or nowhere (logged) for a host agent.
func (a *Agent) efiVars() (efi.Vars, bool) {
	if a.cfg.EFIVars != "" {
		return efi.Vars{Dir: a.cfg.EFIVars}, true
	}
	if a.realPower || a.cfg.Power == "system" {
		return efi.Vars{Dir: efi.DefaultVarsDir}, true
	}
	return efi.Vars{}, false
}

// findESP picks the EFI system partition as IPA does: the ESP-typed
// partition (MBR type 0xef), else the one whose PARTUUID or filesystem
// UUID is efiUUID.
func findESP(device string, table disk.Table, efiUUID string) (disk.Partition, bool) {
	for _, p := range table.Partitions {
		if strings.EqualFold(p.TypeGUID, espType) || p.MBRType == 0xef {
			return p, true
		}
	}
	if efiUUID == "" {
		return disk.Partition{}, false
	}
	return partitionByUUID(device, table, efiUUID)
}

// partitionByUUID finds the partition whose PARTUUID or filesystem UUID
// is uuid (case-insensitive), as IPA's get_partition does with lsblk.
func partitionByUUID(device string, table disk.Table, uuid string) (disk.Partition, bool) {
	f, err := os.Open(device)
	if err != nil {
		return disk.Partition{}, false
	}
	defer f.Close()
	for _, p := range table.Partitions {
		if p.UUID != "" && strings.EqualFold(p.UUID, uuid) {
			return p, true
		}
		if fs, err := disk.ProbeFilesystem(f, p.Start); err == nil && fs.UUID != "" && strings.EqualFold(fs.UUID, uuid) {
			return p, true
		}
	}
	return disk.Partition{}, false
}

// setupUEFI creates NVRAM boot entries for the loaders on the disk's ESP
// (IPA's manage_uefi). false, nil: the ESP holds no loader, so grub must
// be installed.
func (d *deployer) setupUEFI(ctx context.Context, c *Call, device, efiUUID string) (bool, error) {
	table, err := disk.ReadTable(device)
	if err != nil {
		return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: err.Error()}
	}
	esp, ok := findESP(device, table, efiUUID)
	if !ok {
		return false, &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto",
			Details: fmt.Sprintf("No EFI partition could be detected on device %s and EFI partition UUID has not been recorded during deployment (which is often the case for whole disk images). Are you using a UEFI-compatible image?", device)}
	}
	part := disk.PartitionPath(device, esp.Number)
	loaders, err := espLoaders(device, esp, table.SectorSize)
	if err != nil {
		return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed",
			Details: fmt.Sprintf("Could not configure UEFI boot on device %s: %v", device, err)}
	}
	if len(loaders) == 0 {
		c.Log.Warn("empty EFI system partition: no boot loader to register", "partition", part)
		return false, nil
	}
	if isMDName(device) {
		return d.setupRAIDESP(ctx, c, device, table, esp, loaders) // software RAID: an ESP on every member
	}
	var guid efi.GUID
	if table.Kind == "gpt" {
		if guid, err = efi.ParseGUID(esp.UUID); err != nil {
			return false, err
		}
	}
	lbs := uint64(table.SectorSize)
	hd := efi.HardDrive(uint32(esp.Number), uint64(esp.Start)/lbs, uint64(esp.Size)/lbs, table.Kind == "gpt", guid, table.DiskSignature)
	vars, real := d.a.efiVars()
	for _, l := range loaders {
		opt := efi.LoadOption{Attributes: efi.LoadOptionActive, Description: l.Label, Path: efi.DevicePath{hd, efi.FilePath(l.Path)}}
		if !real {
			c.Log.Info("simulated: would add a UEFI boot entry first in BootOrder (host agent; goipa-efivars names a directory to write to)", "label", l.Label, "path", opt.Path.String())
			continue
		}
		if err := replaceBootEntry(vars, opt); err != nil {
			return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed",
				Details: fmt.Sprintf("Could not configure UEFI boot on device %s: %v", device, err)}
		}
		c.Log.Info("UEFI boot entry added", "label", l.Label, "path", opt.Path.String())
	}
	return true, nil
}

// espLoaders reads the ESP in place, without mounting it.
func espLoaders(device string, esp disk.Partition, sectorSize int) ([]efi.Loader, error) {
	f, err := os.Open(device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fsys, err := disk.ReadFAT(f, esp, sectorSize)
	if err != nil {
		return nil, err
	}
	return efi.Loaders(fsys)
}

// replaceBootEntry drops entries with the same label (IPA's duplicate
// rule) and adds opt first in BootOrder.
func replaceBootEntry(v efi.Vars, opt efi.LoadOption) error {
	ents, err := v.BootEntries()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if e.Description == opt.Description {
			if err := v.RemoveBootEntry(e.Num); err != nil {
				return err
			}
		}
	}
	_, err = v.AddBootEntry(opt)
	return err
}

// grubBinary is the image's grub flavour: grub2-install (Red Hat family)
// or grub-install (Debian family).
func grubBinary(root string) string {
	if _, err := os.Stat(path.Join(root, "usr/sbin/grub2-install")); err == nil {
		return "grub2"
	}
	return "grub"
}
