package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func TestBurninStepsAreOffered(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	for kind, want := range map[string][]string{"clean": {"burnin_cpu", "burnin_memory", "burnin_disk"}, "service": {"burnin_cpu", "burnin_memory"}} {
		code, res := c.post(kind+".get_"+kind+"_steps", map[string]any{"node": map[string]any{"uuid": "n1"}, "ports": []any{}}, "?wait=true")
		require.Equal(t, 200, code)
		steps := map[string]map[string]any{}
		for _, s := range res["command_result"].(map[string]any)[kind+"_steps"].(map[string]any)["GenericHardwareManager"].([]any) {
			steps[s.(map[string]any)["step"].(string)] = s.(map[string]any)
		}
		for _, name := range want {
			require.Contains(t, steps, name, kind)
			assert.Equal(t, float64(0), steps[name]["priority"], "%s %s runs only when asked for", kind, name)
		}
		if kind == "service" {
			assert.NotContains(t, steps, "burnin_disk", "IPA offers no disk burn-in as a service step")
		}
	}
}

func runStep(t *testing.T, c *apiClient, name string, node map[string]any) map[string]any {
	t.Helper()
	code, res := c.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"step": name, "interface": "deploy"}, "node": node, "ports": []any{}}, "?wait=true")
	require.Equal(t, 200, code)
	return res
}

func TestBurninCPUAndMemory(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	out := filepath.Join(t.TempDir(), "cpu.json")
	// Options as the CLI sets them (strings) and as JSON numbers.
	res := runStep(t, c, "burnin_cpu", map[string]any{"driver_info": map[string]any{"agent_burnin_cpu_timeout": "1", "agent_burnin_cpu_cpu": 2.0, "agent_burnin_cpu_outputfile": out}})
	assert.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	var r struct {
		Stressor string  `json:"stressor"`
		Workers  int     `json:"workers"`
		Ops      float64 `json:"bogo_ops"`
		Seconds  float64 `json:"seconds"`
	}
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &r))
	assert.Equal(t, "cpu", r.Stressor)
	assert.Equal(t, 2, r.Workers)
	assert.Greater(t, r.Ops, 0.0)
	assert.InDelta(t, 1, r.Seconds, 0.5)

	res = runStep(t, c, "burnin_memory", map[string]any{"driver_info": map[string]any{"agent_burnin_vm_timeout": 1.0, "agent_burnin_vm_vm": "2", "agent_burnin_vm_vm-bytes": "8M"}})
	assert.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])

	res = runStep(t, c, "burnin_memory", map[string]any{"driver_info": map[string]any{"agent_burnin_vm_vm-bytes": "lots"}})
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "agent_burnin_vm_vm-bytes")
	res = runStep(t, c, "burnin_cpu", map[string]any{"driver_info": map[string]any{"agent_burnin_cpu_timeout": -3.0}})
	assert.Equal(t, StatusFailed, res["command_status"])
}

func TestBurninDiskOnLoopDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	f, err := os.CreateTemp("/dev/shm", "goipa-burnin-")
	require.NoError(t, err)
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	require.NoError(t, os.Truncate(f.Name(), 16<<20))
	out, err := exec.Command("losetup", "--find", "--show", f.Name()).Output()
	require.NoError(t, err)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })

	c := newAPI(t, newTestAgent(t, "ipa-standalone=1 goipa-devices="+dev))
	report := filepath.Join(t.TempDir(), "disk.json")
	res := runStep(t, c, "burnin_disk", map[string]any{"driver_info": map[string]any{"agent_burnin_fio_disk_loops": 2.0, "agent_burnin_fio_disk_outputfile": report}})
	require.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	var rs []struct {
		Device       string `json:"device"`
		Passes       int    `json:"passes"`
		BytesWritten int64  `json:"bytes_written"`
	}
	b, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rs))
	require.Len(t, rs, 1)
	assert.Equal(t, dev, rs[0].Device)
	assert.Equal(t, 2, rs[0].Passes)
	assert.Equal(t, int64(32<<20), rs[0].BytesWritten)

	res = runStep(t, c, "burnin_disk", map[string]any{"driver_info": map[string]any{"agent_burnin_fio_disk_smart_test": true}})
	assert.Equal(t, StatusFailed, res["command_status"], "a SMART test goipa cannot run is an error, not skipped")
}
