package agent

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/raid"
)

// Software RAID steps: IPA's create_configuration and
// delete_configuration clean steps, the apply_configuration deploy step
// and the same three as service steps. The work is package raid's; this
// file translates IPA's parameters and errors.

var raidApplyArgsInfo = map[string]ArgInfo{
	"raid_config": {Description: "The RAID configuration (logical_disks) to build.", Required: true},
	"delete_existing": {Description: "Whether to delete the existing software RAID configuration first; true unless set.",
		Required: false},
}

// raidError turns package raid's errors into IPA's SoftwareRAIDError or
// InvalidCommandParamsError; other errors (the host-mode guard, listing
// disks) pass unchanged.
func raidError(err error) error {
	var re *raid.Error
	var bad *raid.ArgError
	switch {
	case errors.As(err, &re):
		return &Error{Type: "SoftwareRAIDError", Code: 500, Message: "Software RAID caused unknown error", Details: re.Details}
	case errors.As(err, &bad):
		return ErrInvalidParams("%s", bad.Msg)
	}
	return err
}

func (a *Agent) registerRAID() {
	create := Step{Name: "create_configuration", Interface: "raid", Priority: 0, Abortable: true, Run: a.createConfiguration}
	del := Step{Name: "delete_configuration", Interface: "raid", Priority: 0, Abortable: true, Run: a.deleteConfiguration}
	apply := Step{Name: "apply_configuration", Interface: "raid", Priority: 0, ArgsInfo: raidApplyArgsInfo, Run: a.applyConfiguration}
	for _, k := range []StepKind{Clean, Service} {
		a.steps.Register(k, create)
		a.steps.Register(k, del)
	}
	a.steps.Register(Deploy, apply)
	a.steps.Register(Service, apply)
	a.assembleExisting()
}

// createConfiguration is IPA's create_configuration: the node's
// target_raid_config, or {} when it asks for no software RAID.
func (a *Agent) createConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	cfg, _ := sc.Node["target_raid_config"].(map[string]any)
	if len(cfg) == 0 {
		sc.Log.Info("create_configuration: no target_raid_config")
		return map[string]any{}, nil
	}
	return a.doCreateConfiguration(ctx, sc, cfg)
}

// applyConfiguration is IPA's apply_configuration deploy step.
func (a *Agent) applyConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	cfg, del, err := raid.ApplyArgs(sc.Args)
	if err != nil {
		return nil, raidError(err)
	}
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := raid.Validate(cfg, sc.Node, len(disks)); err != nil {
		return nil, raidError(err)
	}
	if del {
		if _, err := a.deleteConfiguration(ctx, sc); err != nil {
			return nil, err
		}
	}
	return a.doCreateConfiguration(ctx, sc, cfg)
}

func (a *Agent) doCreateConfiguration(ctx context.Context, sc *StepCall, cfg map[string]any) (any, error) {
	if !raid.HasSoftwareRAID(cfg) {
		sc.Log.Info("create_configuration: no software RAID in the config")
		return map[string]any{}, nil
	}
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	bootMode := a.partitionBootMode(sc.Node)
	lay := raid.Layout{BootMode: bootMode, Label: partitionDiskLabel(sc.Node, bootMode)}
	if err := raid.Create(ctx, disks, cfg, sc.Node, lay, sc.Log); err != nil {
		return nil, raidError(err)
	}
	return cfg, nil
}

// deleteConfiguration is IPA's delete_configuration (raid.Delete).
func (a *Agent) deleteConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	return nil, raidError(raid.Delete(ctx, disks, sc.Node, sc.Log))
}

// raidCandidates are the whole disks software RAID may use, within
// goipa-devices.
func (a *Agent) raidCandidates(ctx context.Context) ([]inventory.Disk, error) {
	all, err := a.scopedDisks(ctx)
	return raid.Candidates(all), err
}

// assembleExisting starts the arrays whose members are on the disks, as
// IPA's ramdisk does through udev's mdadm rules at boot, so the
// inventory, the install disk and erase see them. Only where goipa owns
// the disks (the ramdisk, or goipa-devices naming them).
func (a *Agent) assembleExisting() {
	if a.mayTouchDisks() != nil {
		return
	}
	if _, err := os.Stat("/sys/module/md_mod"); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	disks, err := inventory.BlockDevices(ctx, inventory.WithDevices(a.cfg.Devices), inventory.WithLogger(a.log))
	if err != nil {
		return
	}
	raid.Assemble(ctx, disks, a.log)
}
