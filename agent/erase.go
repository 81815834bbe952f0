package agent

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/raid"
)

// registerErase offers the erase steps that disk implements.
func (a *Agent) registerErase() {
	meta := func(ctx context.Context, sc *StepCall) (any, error) { return a.eraseMetadata(ctx, sc) }
	a.steps.Register(Clean, Step{Name: "erase_devices_metadata", Interface: "deploy", Priority: 99, Abortable: true, Run: meta})
	a.steps.Register(Deploy, Step{Name: "erase_devices_metadata", Interface: "deploy", Priority: 0, Run: meta})
	full := func(ctx context.Context, sc *StepCall) (any, error) { return a.eraseDevices(ctx, sc, false) }
	express := func(ctx context.Context, sc *StepCall) (any, error) { return a.eraseDevices(ctx, sc, true) }
	a.steps.Register(Clean, Step{Name: "erase_devices", Interface: "deploy", Priority: 10, Abortable: true, Run: full})
	a.steps.Register(Clean, Step{Name: "erase_devices_express", Interface: "deploy", Priority: 0, Abortable: true, Run: express})
}

// eraseDevices is erase_devices (and, with express, erase_devices_express):
// every disk at once unless Ironic limits the concurrency, each with the
// strongest method it supports. The result maps each device to its audit
// report (IPA maps them to null; Ironic does not read it).
func (a *Agent) eraseDevices(ctx context.Context, sc *StepCall, express bool) (any, error) {
	dii, _ := sc.Node["driver_internal_info"].(map[string]any)
	opts, err := disk.EraseOptionsFrom(dii)
	if err != nil {
		return nil, ErrInvalidParams("%v", err)
	}
	opts.Express = express
	disks, err := a.eraseTargets(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	guard := guardSpecial(a, sc.Node)
	var targets []disk.Target
	for _, d := range disks {
		if guard {
			if err := disk.CheckSpecialFilesystems(d.Name); err != nil {
				return nil, err
			}
		}
		targets = append(targets, d.EraseTarget())
	}
	var mu sync.Mutex
	state := map[string]any{}
	progress := func(dev string, done, total int64) {
		mu.Lock()
		state[dev] = map[string]any{"done_bytes": done, "total_bytes": total}
		snap := map[string]any{"devices": maps.Clone(state)}
		mu.Unlock()
		sc.SetProgress(snap)
	}
	reports, err := disk.EraseDevices(ctx, targets, opts, progress, sc.Log)
	result := map[string]any{}
	for _, r := range reports {
		result[r.Device] = r
		sc.Log.Info("erase report", "device", r.Device, "serial", r.Serial, "methods", r.Methods, "verification", r.Verification, "error", r.Error)
	}
	if err != nil {
		return nil, &Error{Type: "BlockDeviceEraseError", Code: 500, Message: "Failed to erase device(s)", Details: err.Error()}
	}
	return result, nil
}

// deviceScope is what goipa may write or erase (disk.ScopeFor).
func (a *Agent) deviceScope() disk.Scope {
	return disk.ScopeFor(a.cfg.Devices, a.realPower || a.cfg.Power == "system")
}

// mayTouchDisks is the host-mode guard: a `goipa agent` without
// goipa-devices never erases or writes anything.
func (a *Agent) mayTouchDisks() error {
	if len(a.cfg.Devices) == 0 && !a.realPower && a.cfg.Power != "system" {
		return disk.ErrNoDevices
	}
	return nil
}

// checkDevice is the one check every command that writes or erases
// makes before it touches a device (disk.Scope.Check), with IPA's
// DeviceNotFound class when it refuses.
func (a *Agent) checkDevice(dev string) error {
	if err := a.deviceScope().Check(dev); err != nil {
		return &Error{Type: "DeviceNotFound", Code: 404, Message: "Error finding the disk or partition device to deploy the image onto", Details: err.Error()}
	}
	return nil
}

// scopedDisks lists the block devices (inventory.BlockDevices, limited to
// goipa-devices), each checked against the device scope.
func (a *Agent) scopedDisks(ctx context.Context) ([]inventory.Disk, error) {
	if err := a.mayTouchDisks(); err != nil {
		return nil, err
	}
	disks, err := inventory.BlockDevices(ctx, inventory.WithDevices(a.cfg.Devices), inventory.WithLogger(a.log))
	if err != nil {
		return nil, err
	}
	for _, d := range disks {
		if err := a.checkDevice(d.Name); err != nil {
			return nil, err
		}
	}
	return disks, nil
}

// eraseTargets lists the disks an erase step may touch (raid.EraseTargets).
func (a *Agent) eraseTargets(ctx context.Context, node map[string]any) ([]inventory.Disk, error) {
	disks, err := a.scopedDisks(ctx)
	if err != nil {
		return nil, err
	}
	out, err := raid.EraseTargets(disks, node, a.log)
	var bad *raid.SkipListError
	if errors.As(err, &bad) {
		return nil, ErrInvalidParams("%v", bad)
	}
	return out, err
}

func guardSpecial(a *Agent, node map[string]any) bool {
	if !a.cfg.GuardSpecialFilesystems {
		return false
	}
	dii, _ := node["driver_internal_info"].(map[string]any)
	v, ok := dii["wipe_special_filesystems"].(bool)
	return !ok || v
}

// eraseMetadata is erase_devices_metadata: every disk at once, each
// after the safety checks (disk.WipeMetadataEach); one failure fails the
// step, the others finish.
func (a *Agent) eraseMetadata(ctx context.Context, sc *StepCall) (any, error) {
	disks, err := a.eraseTargets(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = d.Name
	}
	if failures := disk.WipeMetadataEach(ctx, names, guardSpecial(a, sc.Node), func(dev string) { sc.Log.Info("metadata erased", "device", dev) }); len(failures) > 0 {
		return nil, &Error{Type: "BlockDeviceEraseError", Code: 500, Message: "Failed to erase the metadata on the device(s)", Details: failures.Error()}
	}
	return nil, nil
}
