package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeGPUBurn installs a gpu_burn that lists two GPUs and records how it
// was called, as the real tool would be found in its install directory.
func fakeGPUBurn(t *testing.T, exit int) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$PWD $*\" >> " + calls + "\n" +
		"if [ \"$1\" = -l ]; then echo 'ID 0: NVIDIA A100'; echo 'ID 1: NVIDIA A100'; echo 'other line'; exit 0; fi\n" +
		"echo burning; echo oops >&2; exit " + string(rune('0'+exit)) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gpu_burn"), []byte(script), 0o755))
	return dir, calls
}

func TestBurninGPU(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))

	dir, calls := fakeGPUBurn(t, 0)
	res := runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{
		"agent_burnin_gpu_install_dir": dir, "agent_burnin_gpu_count": 2.0, "agent_burnin_gpu_memory": "50%", "agent_burnin_gpu_timeout": "30"}})
	assert.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	b, err := os.ReadFile(calls)
	require.NoError(t, err)
	assert.Equal(t, dir+" -l\n"+dir+" -m 50% 30\n", string(b), "IPA's arguments, run in the install directory")

	// Without a count, no listing; defaults as IPA's.
	dir, calls = fakeGPUBurn(t, 0)
	res = runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{"agent_burnin_gpu_install_dir": dir}})
	assert.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	b, err = os.ReadFile(calls)
	require.NoError(t, err)
	assert.Equal(t, dir+" -m 95% 86400\n", string(b))

	// The wrong number of GPUs is IPA's CleaningError.
	dir, _ = fakeGPUBurn(t, 0)
	res = runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{"agent_burnin_gpu_install_dir": dir, "agent_burnin_gpu_count": 3.0}})
	require.Equal(t, StatusFailed, res["command_status"])
	e := res["command_error"].(map[string]any)
	assert.Equal(t, "CleaningError", e["type"])
	assert.Equal(t, "gpu-burn failed to find the correct number of gpus. 2 found but 3 expected.", e["details"])

	// A failing run and a missing tool are CommandExecutionErrors that say so.
	dir, _ = fakeGPUBurn(t, 1)
	res = runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{"agent_burnin_gpu_install_dir": dir}})
	require.Equal(t, StatusFailed, res["command_status"])
	e = res["command_error"].(map[string]any)
	assert.Equal(t, "CommandExecutionError", e["type"])
	assert.Contains(t, e["details"], "gpu-burn failed with error")
	assert.Contains(t, e["details"], "oops")

	res = runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{"agent_burnin_gpu_install_dir": t.TempDir()}})
	require.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "gpu_burn")

	res = runStep(t, c, "burnin_gpu", map[string]any{"driver_info": map[string]any{"agent_burnin_gpu_count": "many"}})
	require.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "InvalidCommandParamsError", res["command_error"].(map[string]any)["type"])
}
