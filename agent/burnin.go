package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/goipa/goipa/burnin"
	"github.com/goipa/goipa/disk"
)

// registerBurnin offers IPA's burn-in steps (burnin.py), run by goipa
// itself instead of stress-ng and fio, with IPA's driver_info options.
// Like IPA's, they have priority 0: only manual cleaning runs them.
// burnin_cpu, burnin_gpu, burnin_memory and burnin_network are service
// steps too (IPA master);
// burnin_disk is not (it destroys the disks' contents).
func (a *Agent) registerBurnin() {
	cpu := func(ctx context.Context, sc *StepCall) (any, error) { return a.burninCPU(ctx, sc) }
	mem := func(ctx context.Context, sc *StepCall) (any, error) { return a.burninMemory(ctx, sc) }
	dsk := func(ctx context.Context, sc *StepCall) (any, error) { return a.burninDisk(ctx, sc) }
	nw := func(ctx context.Context, sc *StepCall) (any, error) { return a.burninNetwork(ctx, sc) }
	gpu := func(ctx context.Context, sc *StepCall) (any, error) { return a.burninGPU(ctx, sc) }
	for _, k := range []StepKind{Clean, Service} {
		a.steps.Register(k, Step{Name: "burnin_cpu", Interface: "deploy", Priority: 0, Abortable: true, Run: cpu})
		a.steps.Register(k, Step{Name: "burnin_gpu", Interface: "deploy", Priority: 0, Abortable: true, Run: gpu})
		a.steps.Register(k, Step{Name: "burnin_memory", Interface: "deploy", Priority: 0, Abortable: true, Run: mem})
		a.steps.Register(k, Step{Name: "burnin_network", Interface: "deploy", Priority: 0, Abortable: true, Run: nw})
	}
	a.steps.Register(Clean, Step{Name: "burnin_disk", Interface: "deploy", Priority: 0, Abortable: true, Run: dsk})
}

// driverInfo reads IPA's burn-in options: numbers arrive as JSON numbers
// or, set from the command line, as strings.
type driverInfo map[string]any

func (d driverInfo) int(key string, def int) (int, error) {
	switch v := d[key].(type) {
	case nil:
		return def, nil
	case float64:
		if v >= 0 && v == float64(int(v)) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, ErrInvalidParams("driver_info.%s=%v is not a whole number >= 0", key, d[key])
}

func (d driverInfo) str(key, def string) (string, error) {
	switch v := d[key].(type) {
	case nil:
		return def, nil
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", ErrInvalidParams("driver_info.%s=%v is not a string", key, d[key])
}

func (d driverInfo) bool(key string) (bool, error) {
	switch v := d[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, ErrInvalidParams("driver_info.%s=%v is not a boolean", key, d[key])
}

func nodeDriverInfo(node map[string]any) driverInfo {
	di, _ := node["driver_info"].(map[string]any)
	return di
}

func burninDone(sc *StepCall, r burnin.Result, out string, err error) (any, error) {
	sc.Log.Info("burn-in finished", "stressor", r.Stressor, "workers", r.Workers, "bytes", r.Bytes, "bogo_ops", r.Ops, "seconds", r.Seconds, "bogo_ops_per_second", r.OpsPerSec, "error", err)
	if out != "" {
		if werr := r.WriteFile(out); werr != nil {
			sc.Log.Warn("burn-in output file", "path", out, "error", werr)
		}
	}
	if err != nil {
		return nil, errExecution(err.Error())
	}
	return nil, nil
}

// burninCPU is burnin_cpu: agent_burnin_cpu_cpu workers (0: every CPU)
// for agent_burnin_cpu_timeout seconds (a day by default).
func (a *Agent) burninCPU(ctx context.Context, sc *StepCall) (any, error) {
	di := nodeDriverInfo(sc.Node)
	cpus, err := di.int("agent_burnin_cpu_cpu", 0)
	if err != nil {
		return nil, err
	}
	secs, err := di.int("agent_burnin_cpu_timeout", 86400)
	if err != nil {
		return nil, err
	}
	out, err := di.str("agent_burnin_cpu_outputfile", "")
	if err != nil {
		return nil, err
	}
	r, err := burnin.CPU(ctx, cpus, time.Duration(secs)*time.Second)
	return burninDone(sc, r, out, err)
}

// burninMemory is burnin_memory: agent_burnin_vm_vm workers (0: one per
// CPU) over agent_burnin_vm_vm-bytes (98% of available memory by
// default) for agent_burnin_vm_timeout seconds.
func (a *Agent) burninMemory(ctx context.Context, sc *StepCall) (any, error) {
	di := nodeDriverInfo(sc.Node)
	vms, err := di.int("agent_burnin_vm_vm", 0)
	if err != nil {
		return nil, err
	}
	secs, err := di.int("agent_burnin_vm_timeout", 86400)
	if err != nil {
		return nil, err
	}
	spec, err := di.str("agent_burnin_vm_vm-bytes", "98%")
	if err != nil {
		return nil, err
	}
	out, err := di.str("agent_burnin_vm_outputfile", "")
	if err != nil {
		return nil, err
	}
	avail, err := burnin.MemAvailable()
	if err != nil {
		return nil, err
	}
	total, err := burnin.ParseBytes(spec, avail)
	if err != nil {
		return nil, ErrInvalidParams("driver_info.agent_burnin_vm_vm-bytes: %v", err)
	}
	r, err := burnin.Memory(ctx, vms, total, time.Duration(secs)*time.Second)
	return burninDone(sc, r, out, err)
}

// burninDisk is burnin_disk: every disk goipa may use, at once, written
// and verified agent_burnin_fio_disk_loops times (4), or for
// agent_burnin_fio_disk_runtime seconds when that is set.
func (a *Agent) burninDisk(ctx context.Context, sc *StepCall) (any, error) {
	di := nodeDriverInfo(sc.Node)
	loops, err := di.int("agent_burnin_fio_disk_loops", 4)
	if err != nil {
		return nil, err
	}
	secs, err := di.int("agent_burnin_fio_disk_runtime", 0)
	if err != nil {
		return nil, err
	}
	out, err := di.str("agent_burnin_fio_disk_outputfile", "")
	if err != nil {
		return nil, err
	}
	if smart, err := di.bool("agent_burnin_fio_disk_smart_test"); err != nil {
		return nil, err
	} else if smart {
		return nil, ErrInvalidParams("driver_info.agent_burnin_fio_disk_smart_test: goipa has no SMART self-test (smartctl) yet")
	}
	disks, err := a.eraseTargets(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = d.Name
	}
	state := map[string]any{}
	results, errs := disk.BurnInEach(ctx, names, loops, time.Duration(secs)*time.Second, func(dev string, done, total int64) {
		state[dev] = map[string]any{"done_bytes": done, "total_bytes": total}
		sc.SetProgress(map[string]any{"devices": maps.Clone(state)})
	})
	var failed []string
	for i, r := range results {
		sc.Log.Info("disk burn-in", "device", r.Device, "passes", r.Passes, "bytes_written", r.BytesWritten, "bytes_verified", r.BytesRead, "seconds", r.Seconds, "error", errs[i])
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.Device, errs[i]))
		}
	}
	if out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			sc.Log.Warn("burn-in output file", "path", out, "error", err)
		}
	}
	if len(failed) > 0 {
		return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Error while executing command", Details: fmt.Sprint(failed)}
	}
	return nil, nil
}

// burninGPU is IPA master's burnin_gpu (burnin.GPU) with its driver_info
// options: agent_burnin_gpu_install_dir (/opt/gpu-burn),
// agent_burnin_gpu_timeout, agent_burnin_gpu_memory and
// agent_burnin_gpu_count.
func (a *Agent) burninGPU(ctx context.Context, sc *StepCall) (any, error) {
	di := nodeDriverInfo(sc.Node)
	dir, err := di.str("agent_burnin_gpu_install_dir", "/opt/gpu-burn")
	if err != nil {
		return nil, err
	}
	secs, err := di.int("agent_burnin_gpu_timeout", 86400)
	if err != nil {
		return nil, err
	}
	mem, err := di.str("agent_burnin_gpu_memory", "95%")
	if err != nil {
		return nil, err
	}
	count, err := di.int("agent_burnin_gpu_count", 0)
	if err != nil {
		return nil, err
	}
	out, err := burnin.GPU(ctx, burnin.GPUOptions{InstallDir: dir, Duration: time.Duration(secs) * time.Second, Memory: mem, Count: count}, sc.Log)
	var wrong *burnin.GPUCountError
	var failed *burnin.GPUBurnError
	switch {
	case errors.As(err, &wrong):
		return nil, &Error{Type: "CleaningError", Code: 500, Message: "Clean step failed", Details: wrong.Error()}
	case errors.As(err, &failed):
		err = errExecution(failed.Error())
	}
	sc.Log.Info("burn-in gpu finished", "install_dir", dir, "output", out, "error", err)
	return nil, err
}
