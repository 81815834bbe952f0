// Package bootloader makes an installed disk bootable the way
// ironic-python-agent's install_bootloader does: on UEFI, a boot entry
// per loader found on the disk's EFI system partition, first in
// BootOrder (for a software RAID root, an ESP mirrored on every member
// with an entry each); on BIOS, the image's own grub-install in a chroot
// of its root partition. It also removes boot entries by pattern
// (clean_uefi_nvram) and reports the entries as efibootmgr would.
package bootloader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/raid"
)

// ESPType is the GPT partition type of an EFI system partition; parted's
// "boot" and "esp" flags on GPT both mean this type.
const ESPType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// FindESP picks the EFI system partition as IPA does: the ESP-typed
// partition (MBR type 0xef), else the one whose PARTUUID or filesystem
// UUID is efiUUID.
func FindESP(device string, table disk.Table, efiUUID string) (disk.Partition, bool) {
	for _, p := range table.Partitions {
		if strings.EqualFold(p.TypeGUID, ESPType) || p.MBRType == 0xef {
			return p, true
		}
	}
	if efiUUID == "" {
		return disk.Partition{}, false
	}
	return PartitionByUUID(device, table, efiUUID)
}

// PartitionByUUID finds the partition whose PARTUUID or filesystem UUID
// is uuid (case-insensitive), as IPA's get_partition does with lsblk.
func PartitionByUUID(device string, table disk.Table, uuid string) (disk.Partition, bool) {
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

// NVRAM is where boot entries go. With Simulate set nothing is written:
// each entry is logged instead (a goipa agent on a host).
type NVRAM struct {
	Vars     efi.Vars
	Simulate bool
}

// NoESPError: the disk has no EFI system partition (IPA's words).
type NoESPError struct{ Device string }

func (e *NoESPError) Error() string {
	return fmt.Sprintf("No EFI partition could be detected on device %s and EFI partition UUID has not been recorded during deployment (which is often the case for whole disk images). Are you using a UEFI-compatible image?", e.Device)
}

// UEFIError: the ESP or the boot entries could not be set up.
type UEFIError struct {
	Device string
	RAID   bool // the device is a software RAID array
	Err    error
}

func (e *UEFIError) Error() string {
	if e.RAID {
		return fmt.Sprintf("Could not configure UEFI boot on software RAID device %s: %v", e.Device, e.Err)
	}
	return fmt.Sprintf("Could not configure UEFI boot on device %s: %v", e.Device, e.Err)
}

func (e *UEFIError) Unwrap() error { return e.Err }

// SetupUEFI creates NVRAM boot entries for the loaders on the ESP of
// device, whose partition table is table (IPA's manage_uefi). false,
// nil: the ESP holds no loader, so grub must be installed. Errors are
// *NoESPError and *UEFIError where IPA names them.
func SetupUEFI(ctx context.Context, device string, table disk.Table, efiUUID string, nv NVRAM, log *slog.Logger) (bool, error) {
	esp, ok := FindESP(device, table, efiUUID)
	if !ok {
		return false, &NoESPError{Device: device}
	}
	part := disk.PartitionPath(device, esp.Number)
	loaders, err := ESPLoaders(device, esp, table.SectorSize)
	if err != nil {
		return false, &UEFIError{Device: device, Err: err}
	}
	if len(loaders) == 0 {
		log.Warn("empty EFI system partition: no boot loader to register", "partition", part)
		return false, nil
	}
	if raid.IsArrayName(device) {
		return setupRAIDESP(ctx, device, table, esp, loaders, nv, log) // software RAID: an ESP on every member
	}
	var guid efi.GUID
	if table.Kind == "gpt" {
		if guid, err = efi.ParseGUID(esp.UUID); err != nil {
			return false, err
		}
	}
	lbs := uint64(table.SectorSize)
	hd := efi.HardDrive(uint32(esp.Number), uint64(esp.Start)/lbs, uint64(esp.Size)/lbs, table.Kind == "gpt", guid, table.DiskSignature)
	for _, l := range loaders {
		opt := efi.LoadOption{Attributes: efi.LoadOptionActive, Description: l.Label, Path: efi.DevicePath{hd, efi.FilePath(l.Path)}}
		if nv.Simulate {
			log.Info("simulated: would add a UEFI boot entry first in BootOrder (host agent; goipa-efivars names a directory to write to)", "label", l.Label, "path", opt.Path.String())
			continue
		}
		if err := ReplaceBootEntry(nv.Vars, opt); err != nil {
			return false, &UEFIError{Device: device, Err: err}
		}
		log.Info("UEFI boot entry added", "label", l.Label, "path", opt.Path.String())
	}
	return true, nil
}

// ESPLoaders reads the ESP in place, without mounting it.
func ESPLoaders(device string, esp disk.Partition, sectorSize int) ([]efi.Loader, error) {
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

// ReplaceBootEntry drops entries with the same label (IPA's duplicate
// rule) and adds opt first in BootOrder.
func ReplaceBootEntry(v efi.Vars, opt efi.LoadOption) error {
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

// RemoveMatching deletes the boot entries whose device path matches one
// of patterns, as IPA's clean_uefi_nvram does through efibootmgr.
func RemoveMatching(vars efi.Vars, patterns []*regexp.Regexp, log *slog.Logger) error {
	ents, err := vars.BootEntries()
	if err != nil {
		return fmt.Errorf("reading the UEFI boot entries: %w", err)
	}
	for _, e := range ents {
		path := e.Path.String()
		for _, re := range patterns {
			if re.MatchString(path) {
				if err := vars.RemoveBootEntry(e.Num); err != nil {
					return err
				}
				log.Info("UEFI boot entry removed", "entry", e.String(), "pattern", re.String())
				break
			}
		}
	}
	return nil
}
