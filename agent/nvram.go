package agent

import (
	"context"
	"errors"

	"github.com/goipa/goipa/bootloader"
	"github.com/goipa/goipa/pstore"
)

// clean_uefi_nvram and erase_pstore: IPA's parameters and error classes;
// the work is packages bootloader's and pstore's.

func (a *Agent) registerFirmwareSteps() {
	nvram := Step{Name: "clean_uefi_nvram", Interface: "deploy", Priority: 0, Abortable: true, Run: a.cleanUEFINVRAM,
		ArgsInfo: map[string]ArgInfo{"match_patterns": {Description: "A list of regular expressions to match EFI boot records against (case-insensitive); a matching record is deleted. Defaults to records on a disk partition and shim or grub loaders.", Required: false}}}
	a.steps.Register(Clean, nvram)
	a.steps.Register(Deploy, nvram)
	a.steps.Register(Clean, Step{Name: "erase_pstore", Interface: "deploy", Priority: 0, Abortable: true, Run: a.erasePstore})
	a.registerFirmwareUpdateSteps()
}

// cleanUEFINVRAM is IPA's clean_uefi_nvram.
func (a *Agent) cleanUEFINVRAM(ctx context.Context, sc *StepCall) (any, error) {
	patterns, err := bootloader.MatchPatterns(sc.Args["match_patterns"])
	if err != nil {
		return nil, ErrInvalidParams("%s", err)
	}
	vars, real := a.efiVars()
	if !real {
		sc.Log.Info("simulated: clean_uefi_nvram on a host agent changes nothing (goipa-efivars names a directory to work on)")
		return nil, nil
	}
	if err := bootloader.RemoveMatching(vars, patterns, sc.Log); err != nil {
		return nil, errExecution(err.Error())
	}
	return nil, nil
}

// erasePstore removes what the kernel's pstore kept of earlier crashes
// (a previous tenant's kernel logs), as IPA's erase_pstore does.
func (a *Agent) erasePstore(ctx context.Context, sc *StepCall) (any, error) {
	if !a.realPower && a.cfg.Power != "system" {
		sc.Log.Info("simulated: erase_pstore on a host agent leaves the host's pstore alone")
		return nil, nil
	}
	dir := pstore.MountPoint()
	if dir == "" {
		sc.Log.Info("erase_pstore: no pstore mounted")
		return nil, nil
	}
	n, err := pstore.Erase(ctx, dir)
	if re := (*pstore.RemoveError)(nil); errors.As(err, &re) {
		return nil, errExecution(re.Error())
	} else if err != nil {
		return nil, err
	}
	sc.Log.Info("erase_pstore: cleared", "path", dir, "entries", n)
	return nil, nil
}
