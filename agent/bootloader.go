package agent

import (
	"context"
	"errors"
	"os"

	"github.com/goipa/goipa/bootloader"
	"github.com/goipa/goipa/efi"
)

// image.install_bootloader: IPA's parameters and error classes; the
// work is package bootloader's.

func (d *deployer) installBootloader(ctx context.Context, c *Call) (any, error) {
	str := func(k string) string { s, _ := c.Params[k].(string); return s }
	target, ignoreFailure := str("target_boot_mode"), d.a.cfg.IgnoreBootloaderFailure
	if v, ok := c.Params["ignore_bootloader_failure"].(bool); ok {
		ignoreFailure = v // the API's word beats the kernel parameter, as in IPA
	}
	if target != "" && target != "uefi" && target != "bios" {
		return nil, ErrInvalidParams("target_boot_mode must be uefi or bios, not %q", target)
	}
	if prep := str("prep_boot_part_uuid"); prep != "" {
		c.Log.Warn("install_bootloader: PReP partitions (ppc64) are not supported by goipa; ignoring prep_boot_part_uuid", "uuid", prep)
	}
	device, err := d.installDisk(ctx, d.a.Node())
	if err != nil {
		return nil, err
	}
	current := d.a.bootMode()
	if target != "" && target != current {
		c.Log.Warn("boot mode mismatch: installing the boot loader may fail or not boot", "target", target, "current", current)
	}
	err = bootloader.Install(ctx, device, bootloader.Request{RootUUID: str("root_uuid"), ESPUUID: str("efi_system_part_uuid"),
		BootMode: current, NVRAM: d.a.nvram(), GrubInstall: d.a.cfg.EnableBIOSBootloaderInstall}, c.Log)
	if err != nil && ignoreFailure {
		c.Log.Error("install_bootloader failed; ignored as configured", "error", err)
		return nil, nil
	}
	return nil, bootloaderError(err)
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

func (a *Agent) nvram() bootloader.NVRAM {
	vars, real := a.efiVars()
	return bootloader.NVRAM{Vars: vars, Simulate: !real}
}

// setupUEFI is bootloader.SetupDiskUEFI with IPA's error classes.
func (d *deployer) setupUEFI(ctx context.Context, c *Call, device, efiUUID string) (bool, error) {
	done, err := bootloader.SetupDiskUEFI(ctx, device, efiUUID, d.a.nvram(), c.Log)
	return done, bootloaderError(err)
}

// bootloaderError maps package bootloader's errors to IPA's classes; any
// other error comes back unchanged.
func bootloaderError(err error) error {
	var (
		noESP *bootloader.NoESPError
		off   *bootloader.GrubDisabledError
		table *bootloader.TableError
		uefi  *bootloader.UEFIError
		grub  *bootloader.GrubError
	)
	switch {
	case errors.As(err, &noESP):
		return deviceNotFound(noESP.Error())
	case errors.As(err, &off):
		return &Error{Type: "InvalidImage", Code: 400, Message: "Invalid image", Details: off.Error()}
	case errors.As(err, &table), errors.As(err, &uefi), errors.As(err, &grub):
		return errExecution(err.Error())
	}
	return err
}
