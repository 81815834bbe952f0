package agent

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// burninGPU is IPA master's burnin_gpu: gpu-burn, which operators who
// want it install into the ramdisk (IPA's images do not carry it either,
// and goipa has no CUDA to burn with on its own), run from
// agent_burnin_gpu_install_dir (/opt/gpu-burn). With agent_burnin_gpu_count
// above 0 the GPUs gpu-burn lists must number exactly that; then
// `gpu_burn -m <agent_burnin_gpu_memory> <agent_burnin_gpu_timeout>`.
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
	if count > 0 {
		out, err := gpuBurn(ctx, dir, "-l")
		if err != nil {
			return nil, err
		}
		found := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "ID") {
				found++
			}
		}
		if found != count {
			return nil, &Error{Type: "CleaningError", Code: 500, Message: "Clean step failed",
				Details: fmt.Sprintf("gpu-burn failed to find the correct number of gpus. %d found but %d expected.", found, count)}
		}
	} else {
		sc.Log.Debug("burn-in gpu: no agent_burnin_gpu_count, not checking the number of GPUs")
	}
	out, err := gpuBurn(ctx, dir, "-m", mem, fmt.Sprint(secs))
	sc.Log.Info("burn-in gpu finished", "install_dir", dir, "output", lastLines(out, 5), "error", err)
	return nil, err
}

// gpuBurn runs ./gpu_burn in its install directory, as IPA does (the
// tool finds its compiled kernel relative to the working directory).
func gpuBurn(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "gpu_burn"), args...)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), errExecution(fmt.Sprintf("gpu-burn failed with error %v: %s", err, strings.TrimSpace(lastLines(stderr.String(), 5))))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
