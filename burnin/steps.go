package burnin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// The Run functions are IPA's burn-in steps (burnin.py) with their
// driver_info options: they read the options, run the burn-in, log its
// figures and write the *_outputfile IPA's options name. A bad option is
// a *ParamError, a burn-in that found a fault a *FailedError.

// finished logs a stressor's figures and writes them to out, if set.
func finished(log *slog.Logger, r Result, out string, err error) error {
	log.Info("burn-in finished", "stressor", r.Stressor, "workers", r.Workers, "bytes", r.Bytes, "bogo_ops", r.Ops, "seconds", r.Seconds, "bogo_ops_per_second", r.OpsPerSec, "error", err)
	if out != "" {
		if werr := r.WriteFile(out); werr != nil {
			log.Warn("burn-in output file", "path", out, "error", werr)
		}
	}
	if err != nil {
		return &FailedError{Details: err.Error(), Err: err}
	}
	return nil
}

// RunCPU is burnin_cpu: agent_burnin_cpu_cpu workers (0: every CPU)
// for agent_burnin_cpu_timeout seconds (a day by default).
func RunCPU(ctx context.Context, di DriverInfo, log *slog.Logger) error {
	cpus, err := di.Int("agent_burnin_cpu_cpu", 0)
	if err != nil {
		return err
	}
	secs, err := di.Int("agent_burnin_cpu_timeout", 86400)
	if err != nil {
		return err
	}
	out, err := di.Text("agent_burnin_cpu_outputfile", "")
	if err != nil {
		return err
	}
	r, err := CPU(ctx, cpus, time.Duration(secs)*time.Second)
	return finished(log, r, out, err)
}

// RunMemory is burnin_memory: agent_burnin_vm_vm workers (0: one per
// CPU) over agent_burnin_vm_vm-bytes (98% of available memory by
// default) for agent_burnin_vm_timeout seconds.
func RunMemory(ctx context.Context, di DriverInfo, log *slog.Logger) error {
	vms, err := di.Int("agent_burnin_vm_vm", 0)
	if err != nil {
		return err
	}
	secs, err := di.Int("agent_burnin_vm_timeout", 86400)
	if err != nil {
		return err
	}
	spec, err := di.Text("agent_burnin_vm_vm-bytes", "98%")
	if err != nil {
		return err
	}
	out, err := di.Text("agent_burnin_vm_outputfile", "")
	if err != nil {
		return err
	}
	avail, err := MemAvailable()
	if err != nil {
		return err
	}
	total, err := ParseBytes(spec, avail)
	if err != nil {
		return paramError("driver_info.agent_burnin_vm_vm-bytes: %v", err)
	}
	r, err := Memory(ctx, vms, total, time.Duration(secs)*time.Second)
	return finished(log, r, out, err)
}

// RunGPU is IPA master's burnin_gpu (GPU) with its driver_info
// options: agent_burnin_gpu_install_dir (/opt/gpu-burn),
// agent_burnin_gpu_timeout, agent_burnin_gpu_memory and
// agent_burnin_gpu_count. A wrong GPU count stays a *GPUCountError.
func RunGPU(ctx context.Context, di DriverInfo, log *slog.Logger) error {
	dir, err := di.Text("agent_burnin_gpu_install_dir", "/opt/gpu-burn")
	if err != nil {
		return err
	}
	secs, err := di.Int("agent_burnin_gpu_timeout", 86400)
	if err != nil {
		return err
	}
	mem, err := di.Text("agent_burnin_gpu_memory", "95%")
	if err != nil {
		return err
	}
	count, err := di.Int("agent_burnin_gpu_count", 0)
	if err != nil {
		return err
	}
	out, err := GPU(ctx, GPUOptions{InstallDir: dir, Duration: time.Duration(secs) * time.Second, Memory: mem, Count: count}, log)
	var failed *GPUBurnError
	if errors.As(err, &failed) {
		err = &FailedError{Details: failed.Error(), Err: failed}
	}
	log.Info("burn-in gpu finished", "install_dir", dir, "output", out, "error", err)
	return err
}

// RunNetwork is burnin_network: a pair of nodes stream to each other
// for agent_burnin_fio_network_runtime seconds (6 hours) in each
// direction, first in this node's role, then in the other. The pair is
// static, agent_burnin_fio_network_config {"role", "partner"} (goipa also
// reads "port", 9000 by default, where each node listens while it
// writes); IPA's dynamic pairing through a tooz backend is not
// supported. agent_burnin_fio_network_pairing_timeout (900 s), IPA's
// wait for a partner when pairing, bounds each direction's wait for the
// partner here. The results (also written to
// agent_burnin_fio_network_outputfile plus ".writer" and ".reader", as
// IPA names fio's output) hold each direction's throughput and errors.
func RunNetwork(ctx context.Context, di DriverInfo, log *slog.Logger) ([]NetworkResult, error) {
	o, out, err := networkOptionsFrom(di)
	if err != nil {
		return nil, err
	}
	log.Info("network burn-in", "partner", o.Partner, "role", o.Role, "listen", o.Listen, "runtime_seconds", o.Runtime.Seconds())
	results, err := Network(ctx, o)
	for _, r := range results {
		log.Info("network burn-in direction", "role", r.Role, "partner", r.Partner, "streams", r.Streams, "bytes", r.Bytes, "seconds", r.Seconds, "mbit_per_second", r.MbitPerSecond, "errors", r.Errors)
		if out != "" {
			b, _ := json.MarshalIndent(r, "", "  ")
			if werr := os.WriteFile(out+"."+string(r.Role), append(b, '\n'), 0o644); werr != nil {
				log.Warn("burn-in output file", "path", out+"."+string(r.Role), "error", werr)
			}
		}
	}
	if err != nil {
		return nil, &FailedError{Details: err.Error(), Err: err}
	}
	return results, nil
}

// networkOptionsFrom reads burnin_network's options from driver_info,
// with IPA's wording for a pairing it cannot make.
func networkOptionsFrom(di DriverInfo) (o NetworkOptions, out string, err error) {
	secs, err := di.Int("agent_burnin_fio_network_runtime", 21600)
	if err != nil {
		return o, "", err
	}
	if out, err = di.Text("agent_burnin_fio_network_outputfile", ""); err != nil {
		return o, "", err
	}
	wait, err := di.Int("agent_burnin_fio_network_pairing_timeout", 900)
	if err != nil {
		return o, "", err
	}
	cfg, err := di.Object("agent_burnin_fio_network_config")
	if err != nil {
		return o, "", err
	}
	if cfg == nil {
		backend, err := di.Text("agent_burnin_fio_network_pairing_backend_url", "")
		if err != nil {
			return o, "", err
		}
		if backend == "" {
			return o, "", errors.New("fio (network): dynamic pairing config is missing agent_burnin_fio_network_pairing_backend_url")
		}
		return o, "", fmt.Errorf("fio (network): dynamic pairing through a tooz backend (agent_burnin_fio_network_pairing_backend_url=%s) is not supported by goipa; pair the nodes with agent_burnin_fio_network_config {\"role\": \"writer\"|\"reader\", \"partner\": HOST}", backend)
	}
	role, _ := cfg["role"].(string)
	if role != string(Writer) && role != string(Reader) {
		return o, "", fmt.Errorf("fio (network) found an unknown role: %v", cfg["role"])
	}
	partner, _ := cfg["partner"].(string)
	if partner == "" {
		return o, "", errors.New("fio (network) failed to find partner")
	}
	port, err := DriverInfo(cfg).Int("port", DefaultNetworkPort)
	if err != nil || port < 1 || port > 65535 {
		return o, "", paramError("driver_info.agent_burnin_fio_network_config port %v is not a TCP port", cfg["port"])
	}
	if secs == 0 {
		return o, "", paramError("driver_info.agent_burnin_fio_network_runtime must be at least 1 second")
	}
	return NetworkOptions{
		Role:           NetworkRole(role),
		Partner:        partner,
		Listen:         ":" + strconv.Itoa(port),
		Runtime:        time.Duration(secs) * time.Second,
		PartnerTimeout: time.Duration(wait) * time.Second,
	}, out, nil
}
