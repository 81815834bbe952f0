package agent

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
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
		targets = append(targets, disk.Target{Path: d.Name, Serial: deref(d.Serial), Model: deref(d.Model), Size: d.Size, ReadOnly: d.ReadOnly})
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// deviceScope is what goipa may write or erase: goipa-devices when set,
// else every disk in the ramdisk (goipa owns the machine), else nothing
// (a host agent without goipa-devices).
func (a *Agent) deviceScope() disk.Scope {
	switch {
	case len(a.cfg.Devices) > 0:
		return disk.Only(a.cfg.Devices)
	case a.realPower || a.cfg.Power == "system":
		return disk.WholeMachine()
	}
	return disk.Scope{}
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

// eraseTargets lists the disks an erase step may touch: the inventory's
// list (goipa-devices), minus properties.skip_block_devices and
// read-only devices, as IPA does.
func (a *Agent) eraseTargets(ctx context.Context, node map[string]any) ([]inventory.Disk, error) {
	if err := a.mayTouchDisks(); err != nil {
		return nil, err
	}
	disks, err := inventory.BlockDevices(ctx, inventory.WithDevices(a.cfg.Devices), inventory.WithLogger(a.log))
	if err != nil {
		return nil, err
	}
	var skips []map[string]any
	if props, ok := node["properties"].(map[string]any); ok {
		if list, ok := props["skip_block_devices"].([]any); ok {
			for _, s := range list {
				if m, ok := s.(map[string]any); ok {
					if _, vol := m["volume_name"]; vol {
						continue // RAID volumes: kept below by name
					}
					skips = append(skips, m)
				}
			}
		}
	}
	keepVolumes := raid.SkipVolumeNames(node)
	var out []inventory.Disk
	for _, d := range disks {
		if err := a.checkDevice(d.Name); err != nil {
			return nil, err
		}
		skip := d.ReadOnly
		// IPA never erases a RAID member as a plain disk (the array is
		// erased as a whole), and keeps arrays named on the skip list.
		if raid.IsMember(d.Name) {
			a.log.Info("erase: skipping software RAID member", "device", d.Name)
			continue
		}
		if name := raid.VolumeName(d.Name); name != "" && keepVolumes[name] {
			a.log.Info("erase: skipping software RAID volume on the skip list", "device", d.Name, "volume_name", name)
			continue
		}
		for _, s := range skips {
			if ok, err := inventory.Matches(d, s); err != nil {
				return nil, ErrInvalidParams("skip_block_devices: %v", err)
			} else if ok {
				skip = true
			}
		}
		if skip {
			a.log.Info("erase: skipping device", "device", d.Name, "read_only", d.ReadOnly)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func guardSpecial(a *Agent, node map[string]any) bool {
	if !a.cfg.GuardSpecialFilesystems {
		return false
	}
	if dii, ok := node["driver_internal_info"].(map[string]any); ok {
		if v, ok := dii["wipe_special_filesystems"].(bool); ok && !v {
			return false
		}
	}
	return true
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
	failures := disk.WipeMetadataEach(ctx, names, guardSpecial(a, sc.Node), func(dev string) { sc.Log.Info("metadata erased", "device", dev) })
	if len(failures) > 0 {
		var parts []string
		for dev, e := range failures {
			parts = append(parts, fmt.Sprintf("%s: %s", dev, e.Error()))
		}
		sort.Strings(parts)
		return nil, &Error{Type: "BlockDeviceEraseError", Code: 500, Message: "Failed to erase the metadata on the device(s)", Details: strings.Join(parts, "; ")}
	}
	return nil, nil
}
