package bootloader

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/raid"
)

// Request is what image.install_bootloader asks for.
type Request struct {
	// RootUUID is the root partition's UUID; "" or "0x..." (the MBR
	// signature get_partition_uuids reports) for a whole-disk image.
	RootUUID string
	ESPUUID  string // the EFI system partition's, when the deploy recorded it
	BootMode string // the ramdisk's: "uefi" or "bios"
	NVRAM    NVRAM
	// GrubInstall allows the image's grub-install where no UEFI loader
	// does the job (ipa-enable-bios-bootloader-install).
	GrubInstall bool
}

// TableError: the install disk's partition table cannot be read.
type TableError struct {
	Device string
	Err    error
}

func (e *TableError) Error() string { return e.Err.Error() }
func (e *TableError) Unwrap() error { return e.Err }

// GrubDisabledError: only the image's grub-install would make the disk
// bootable, and it is not allowed (IPA's enable_bios_bootloader_install).
type GrubDisabledError struct{}

func (e *GrubDisabledError) Error() string {
	return "Install of legacy BIOS bootloaders (the image's grub-install) is disabled; set ipa-enable-bios-bootloader-install=1 to allow it, as IPA's enable_bios_bootloader_install does"
}

// GrubError: the image's grub-install failed (IPA's words).
type GrubError struct {
	Device string
	Err    error
}

func (e *GrubError) Error() string {
	return fmt.Sprintf("Installing GRUB2 boot loader to device %s failed with %v.", e.Device, e.Err)
}
func (e *GrubError) Unwrap() error { return e.Err }

// SetupDiskUEFI is SetupUEFI on device's own partition table; a table
// that cannot be read is a *TableError.
func SetupDiskUEFI(ctx context.Context, device, efiUUID string, nv NVRAM, log *slog.Logger) (bool, error) {
	table, err := disk.ReadTable(device)
	if err != nil {
		return false, &TableError{Device: device, Err: err}
	}
	return SetupUEFI(ctx, device, table, efiUUID, nv, log)
}

// Install makes device bootable as IPA's install_bootloader does. In
// UEFI mode the loaders on the ESP get boot entries (SetupDiskUEFI).
// Where that is not enough, a whole-disk image brings its own boot
// loader; anything else needs the image's grub-install, also a
// whole-disk image on software RAID in BIOS mode: its boot code sits
// inside the array, not in the members' MBRs (IPA master refuses the
// same way rather than leave it unbootable). Errors a caller maps:
// *TableError, *NoESPError, *UEFIError, *GrubDisabledError, *GrubError.
func Install(ctx context.Context, device string, r Request, log *slog.Logger) error {
	if r.BootMode == "uefi" {
		if done, err := SetupDiskUEFI(ctx, device, r.ESPUUID, r.NVRAM, log); err != nil || done {
			return err
		}
	}
	switch {
	case r.RootUUID == "" || r.RootUUID == "0x00000000":
		log.Info("install_bootloader: no root UUID, so a whole-disk image that brings its own boot loader; nothing to install", "device", device)
		return nil
	case strings.HasPrefix(r.RootUUID, "0x") && !raid.IsArrayName(device):
		// IPA would run the image's grub-install here; a whole-disk image
		// carries its boot loader, and rewriting it is not ours to do.
		log.Info("install_bootloader: whole-disk image (MBR signature as root UUID) brings its own boot loader", "device", device, "root_uuid", r.RootUUID)
		return nil
	case !r.GrubInstall:
		return &GrubDisabledError{}
	}
	if err := InstallGrub(ctx, device, Grub{RootUUID: r.RootUUID, ESPUUID: r.ESPUUID, BootMode: r.BootMode}, log); err != nil {
		return &GrubError{Device: device, Err: err}
	}
	return nil
}
