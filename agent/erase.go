package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/inventory"
)

// registerErase offers the erase steps that disk implements.
func (a *Agent) registerErase() {
	meta := func(ctx context.Context, sc *StepCall) (any, error) { return a.eraseMetadata(ctx, sc) }
	a.steps.Register(Clean, Step{Name: "erase_devices_metadata", Interface: "deploy", Priority: 99, Abortable: true, Run: meta})
	a.steps.Register(Deploy, Step{Name: "erase_devices_metadata", Interface: "deploy", Priority: 0, Run: meta})
}

// mayTouchDisks is the host-mode guard: a `goipa agent` without
// goipa-devices never erases or writes anything.
func (a *Agent) mayTouchDisks() error {
	if a.realPower || a.cfg.Power == "system" || len(a.cfg.Devices) > 0 {
		return nil
	}
	return errors.New("goipa agent refuses to erase or write disks on this host without goipa-devices naming the devices it may use")
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
					delete(m, "volume_name") // RAID volumes: no software RAID here yet
					skips = append(skips, m)
				}
			}
		}
	}
	var out []inventory.Disk
	for _, d := range disks {
		skip := d.ReadOnly
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
// after the safety checks; one failure fails the step, the others finish.
func (a *Agent) eraseMetadata(ctx context.Context, sc *StepCall) (any, error) {
	disks, err := a.eraseTargets(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	guard := guardSpecial(a, sc.Node)
	var mu sync.Mutex
	failures := map[string]string{}
	var wg sync.WaitGroup
	for _, d := range disks {
		wg.Add(1)
		go func(dev string) {
			defer wg.Done()
			err := func() error {
				if guard {
					if err := disk.CheckSpecialFilesystems(dev); err != nil {
						return err
					}
				}
				return disk.WipeMetadata(ctx, dev)
			}()
			if err != nil {
				mu.Lock()
				failures[dev] = err.Error()
				mu.Unlock()
				return
			}
			sc.Log.Info("metadata erased", "device", dev)
		}(d.Name)
	}
	wg.Wait()
	if len(failures) > 0 {
		var parts []string
		for dev, e := range failures {
			parts = append(parts, fmt.Sprintf("%s: %s", dev, e))
		}
		sort.Strings(parts)
		return nil, &Error{Type: "BlockDeviceEraseError", Code: 500, Message: "Failed to erase the metadata on the device(s)", Details: strings.Join(parts, "; ")}
	}
	return nil, nil
}
