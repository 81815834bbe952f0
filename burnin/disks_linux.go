package burnin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/goipa/goipa/disk"
)

// DiskOptions are burnin_disk's driver_info options.
type DiskOptions struct {
	Loops      int           // agent_burnin_fio_disk_loops (4)
	Runtime    time.Duration // agent_burnin_fio_disk_runtime; 0: Loops passes
	OutputFile string        // agent_burnin_fio_disk_outputfile
}

// ReadDiskOptions reads burnin_disk's options. IPA's
// agent_burnin_fio_disk_smart_test is refused: goipa has no SMART
// self-test yet, and a test asked for must not be skipped silently.
func ReadDiskOptions(di DriverInfo) (DiskOptions, error) {
	var o DiskOptions
	var err error
	if o.Loops, err = di.Int("agent_burnin_fio_disk_loops", 4); err != nil {
		return o, err
	}
	secs, err := di.Int("agent_burnin_fio_disk_runtime", 0)
	if err != nil {
		return o, err
	}
	o.Runtime = time.Duration(secs) * time.Second
	if o.OutputFile, err = di.Text("agent_burnin_fio_disk_outputfile", ""); err != nil {
		return o, err
	}
	if smart, err := di.Bool("agent_burnin_fio_disk_smart_test"); err != nil {
		return o, err
	} else if smart {
		return o, paramError("driver_info.agent_burnin_fio_disk_smart_test: goipa has no SMART self-test (smartctl) yet")
	}
	return o, nil
}

// RunDisks is burnin_disk: every device at once (disk.BurnInEach),
// written and verified o.Loops times or for o.Runtime. progress gets
// {"devices": {dev: {"done_bytes", "total_bytes"}}} as the passes go.
func RunDisks(ctx context.Context, devices []string, o DiskOptions, progress func(any), log *slog.Logger) error {
	state := map[string]any{}
	results, errs := disk.BurnInEach(ctx, devices, o.Loops, o.Runtime, func(dev string, done, total int64) {
		state[dev] = map[string]any{"done_bytes": done, "total_bytes": total}
		progress(map[string]any{"devices": maps.Clone(state)})
	})
	var failed []string
	for i, r := range results {
		log.Info("disk burn-in", "device", r.Device, "passes", r.Passes, "bytes_written", r.BytesWritten, "bytes_verified", r.BytesRead, "seconds", r.Seconds, "error", errs[i])
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", r.Device, errs[i]))
		}
	}
	if o.OutputFile != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.OutputFile, append(b, '\n'), 0o644); err != nil {
			log.Warn("burn-in output file", "path", o.OutputFile, "error", err)
		}
	}
	if len(failed) > 0 {
		return &FailedError{Details: fmt.Sprint(failed)}
	}
	return nil
}
