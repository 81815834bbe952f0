package burnin

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// GPUOptions are burnin_gpu's settings (IPA's driver_info names).
type GPUOptions struct {
	InstallDir string        // agent_burnin_gpu_install_dir, where gpu_burn is
	Duration   time.Duration // agent_burnin_gpu_timeout
	Memory     string        // agent_burnin_gpu_memory, gpu_burn's -m ("95%")
	Count      int           // agent_burnin_gpu_count: GPUs expected; 0 skips the check
}

// GPUCountError: gpu-burn lists another number of GPUs than expected
// (IPA's CleaningError).
type GPUCountError struct{ Found, Want int }

func (e *GPUCountError) Error() string {
	return fmt.Sprintf("gpu-burn failed to find the correct number of gpus. %d found but %d expected.", e.Found, e.Want)
}

// GPUBurnError: gpu_burn could not run or failed; Stderr is the end of
// what it said.
type GPUBurnError struct {
	Err    error
	Stderr string
}

func (e *GPUBurnError) Error() string {
	return fmt.Sprintf("gpu-burn failed with error %v: %s", e.Err, e.Stderr)
}
func (e *GPUBurnError) Unwrap() error { return e.Err }

// GPU is IPA master's burnin_gpu: gpu-burn, which operators who want it
// install into the ramdisk (IPA's images do not carry it either, and
// goipa has no CUDA to burn with on its own). With Count above 0 the
// GPUs gpu-burn lists must number exactly that; then
// `gpu_burn -m <Memory> <seconds>`. It returns the end of gpu_burn's
// output.
func GPU(ctx context.Context, o GPUOptions, log *slog.Logger) (string, error) {
	if o.Count > 0 {
		out, err := gpuBurn(ctx, o.InstallDir, "-l")
		if err != nil {
			return "", err
		}
		found := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "ID") {
				found++
			}
		}
		if found != o.Count {
			return "", &GPUCountError{Found: found, Want: o.Count}
		}
	} else {
		log.Debug("burn-in gpu: no agent_burnin_gpu_count, not checking the number of GPUs")
	}
	out, err := gpuBurn(ctx, o.InstallDir, "-m", o.Memory, fmt.Sprint(int(o.Duration/time.Second)))
	return lastLines(out, 5), err
}

// gpuBurn runs ./gpu_burn in its install directory, as IPA does (the
// tool finds its compiled kernel relative to the working directory).
func gpuBurn(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "gpu_burn"), args...)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), &GPUBurnError{Err: err, Stderr: strings.TrimSpace(lastLines(stderr.String(), 5))}
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
