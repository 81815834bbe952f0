package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goipa/goipa/bootloader"
	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/raid"
)

// image.install_bootloader and clean_uefi_nvram: IPA's parameters and
// error classes; the work is package bootloader's.

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
	device, err := d.installDisk(ctx, d.a.Node())
	if err != nil {
		return nil, err
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
	case strings.HasPrefix(p.rootUUID, "0x") && !raid.IsArrayName(device):
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
	if err := bootloader.InstallGrub(ctx, device, bootloader.Grub{RootUUID: p.rootUUID, ESPUUID: p.efiUUID, BootMode: current}, c.Log); err != nil {
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

// setupUEFI is bootloader.SetupUEFI with IPA's error classes.
func (d *deployer) setupUEFI(ctx context.Context, c *Call, device, efiUUID string) (bool, error) {
	table, err := disk.ReadTable(device)
	if err != nil {
		return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: err.Error()}
	}
	vars, real := d.a.efiVars()
	done, err := bootloader.SetupUEFI(ctx, device, table, efiUUID, bootloader.NVRAM{Vars: vars, Simulate: !real}, c.Log)
	var noESP *bootloader.NoESPError
	var uefi *bootloader.UEFIError
	switch {
	case errors.As(err, &noESP):
		return false, &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto", Details: noESP.Error()}
	case errors.As(err, &uefi):
		return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed", Details: uefi.Error()}
	}
	return done, err
}
