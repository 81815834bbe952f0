package agent

import (
	"context"
	"errors"

	"github.com/goipa/goipa/burnin"
)

// registerBurnin offers IPA's burn-in steps (burnin.py), run by goipa
// itself instead of stress-ng and fio, with IPA's driver_info options
// (read by package burnin). Like IPA's, they have priority 0: only
// manual cleaning runs them. burnin_cpu, burnin_gpu, burnin_memory and
// burnin_network are service steps too (IPA master); burnin_disk is not
// (it destroys the disks' contents).
func (a *Agent) registerBurnin() {
	const failed = "Command execution failed"
	cpu := func(ctx context.Context, sc *StepCall) (any, error) {
		return nil, burninError(burnin.RunCPU(ctx, nodeDriverInfo(sc.Node), sc.Log), failed)
	}
	mem := func(ctx context.Context, sc *StepCall) (any, error) {
		return nil, burninError(burnin.RunMemory(ctx, nodeDriverInfo(sc.Node), sc.Log), failed)
	}
	gpu := func(ctx context.Context, sc *StepCall) (any, error) {
		return nil, burninError(burnin.RunGPU(ctx, nodeDriverInfo(sc.Node), sc.Log), failed)
	}
	nw := func(ctx context.Context, sc *StepCall) (any, error) {
		results, err := burnin.RunNetwork(ctx, nodeDriverInfo(sc.Node), sc.Log)
		if err != nil {
			return nil, burninError(err, "Error while executing command")
		}
		return map[string]any{"directions": results}, nil
	}
	for _, k := range []StepKind{Clean, Service} {
		a.steps.Register(k, Step{Name: "burnin_cpu", Interface: "deploy", Priority: 0, Abortable: true, Run: cpu})
		a.steps.Register(k, Step{Name: "burnin_gpu", Interface: "deploy", Priority: 0, Abortable: true, Run: gpu})
		a.steps.Register(k, Step{Name: "burnin_memory", Interface: "deploy", Priority: 0, Abortable: true, Run: mem})
		a.steps.Register(k, Step{Name: "burnin_network", Interface: "deploy", Priority: 0, Abortable: true, Run: nw})
	}
	a.steps.Register(Clean, Step{Name: "burnin_disk", Interface: "deploy", Priority: 0, Abortable: true, Run: a.burninDisk})
}

func nodeDriverInfo(node map[string]any) burnin.DriverInfo {
	di, _ := node["driver_info"].(map[string]any)
	return di
}

// burninError gives package burnin's errors IPA's classes. IPA words a
// failed burn-in's CommandExecutionError differently per step: message.
func burninError(err error, message string) error {
	var bad *burnin.ParamError
	var failed *burnin.FailedError
	var wrongCount *burnin.GPUCountError
	switch {
	case errors.As(err, &bad):
		return ErrInvalidParams("%s", bad.Msg)
	case errors.As(err, &failed):
		return &Error{Type: "CommandExecutionError", Code: 500, Message: message, Details: failed.Details}
	case errors.As(err, &wrongCount):
		// IPA master raises CleaningError whatever the step's kind.
		return &Error{Type: "CleaningError", Code: 500, Message: "Clean step failed", Details: wrongCount.Error()}
	}
	return err
}

// burninDisk is burnin_disk over every disk an erase may touch.
func (a *Agent) burninDisk(ctx context.Context, sc *StepCall) (any, error) {
	opts, err := burnin.ReadDiskOptions(nodeDriverInfo(sc.Node))
	if err != nil {
		return nil, burninError(err, "")
	}
	disks, err := a.eraseTargets(ctx, sc.Node)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = d.Name
	}
	return nil, burninError(burnin.RunDisks(ctx, names, opts, sc.SetProgress, sc.Log), "Error while executing command")
}
