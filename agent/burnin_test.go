package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/burnin"
	"github.com/goipa/goipa/internal/testenv"
)

func TestBurninStepsAreOffered(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	for kind, want := range map[string][]string{"clean": {"burnin_cpu", "burnin_gpu", "burnin_memory", "burnin_disk", "burnin_network"}, "service": {"burnin_cpu", "burnin_gpu", "burnin_memory", "burnin_network"}} {
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

func TestBurninNetworkBetweenTwoAgents(t *testing.T) {
	// Two agents on loopback, paired statically: each listens on the same
	// port while it writes (one after the other), as two nodes would.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := float64(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	dir := t.TempDir()
	node := func(role, out string) map[string]any {
		return map[string]any{"driver_info": map[string]any{
			"agent_burnin_fio_network_runtime":         1.0,
			"agent_burnin_fio_network_pairing_timeout": "20",
			"agent_burnin_fio_network_outputfile":      filepath.Join(dir, out),
			"agent_burnin_fio_network_config":          map[string]any{"role": role, "partner": "127.0.0.1", "port": port},
		}}
	}
	a, b := newAPI(t, newTestAgent(t, "ipa-standalone=1")), newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	var wg sync.WaitGroup
	var resA map[string]any
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, resA = a.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "burnin_network", "interface": "deploy"}, "node": node("writer", "a"), "ports": []any{}}, "?wait=true")
	}()
	resB := runStep(t, b, "burnin_network", node("reader", "b"))
	wg.Wait()
	for name, res := range map[string]map[string]any{"a": resA, "b": resB} {
		require.Equal(t, StatusSucceeded, res["command_status"], "%s: %v", name, res["command_error"])
		dirs := res["command_result"].(map[string]any)["clean_result"].(map[string]any)["directions"].([]any)
		require.Len(t, dirs, 2, name)
		for _, d := range dirs {
			d := d.(map[string]any)
			assert.Greater(t, d["mbit_per_second"], 0.0, "%s %s", name, d["role"])
			assert.Greater(t, d["bytes"], 0.0, "%s %s", name, d["role"])
			assert.Equal(t, float64(burnin.DefaultNetworkStreams), d["streams"])
			assert.Empty(t, d["errors"])
		}
		for _, role := range []string{"writer", "reader"} {
			var r burnin.NetworkResult
			b, err := os.ReadFile(filepath.Join(dir, name+"."+role))
			require.NoError(t, err, "IPA's outputfile.<role>")
			require.NoError(t, json.Unmarshal(b, &r))
			assert.Equal(t, burnin.NetworkRole(role), r.Role)
		}
	}
	// What a writes, b reads and checked, and the other way round.
	da := resA["command_result"].(map[string]any)["clean_result"].(map[string]any)["directions"].([]any)
	db := resB["command_result"].(map[string]any)["clean_result"].(map[string]any)["directions"].([]any)
	assert.Equal(t, da[0].(map[string]any)["bytes"], db[0].(map[string]any)["bytes"])
	assert.Equal(t, da[1].(map[string]any)["bytes"], db[1].(map[string]any)["bytes"])
}

func TestBurninNetworkErrors(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, tc := range []struct {
		di   map[string]any
		want string
	}{
		{map[string]any{}, "dynamic pairing config is missing agent_burnin_fio_network_pairing_backend_url"},
		{map[string]any{"agent_burnin_fio_network_pairing_backend_url": "etcd3+http://10.0.0.1:2379"}, "not supported by goipa"},
		{map[string]any{"agent_burnin_fio_network_config": map[string]any{"role": "talker", "partner": "x"}}, "unknown role: talker"},
		{map[string]any{"agent_burnin_fio_network_config": `{"role": "reader"}`}, "failed to find partner"},
		{map[string]any{"agent_burnin_fio_network_config": "{role"}, "not a JSON object"},
		{map[string]any{"agent_burnin_fio_network_config": map[string]any{"role": "reader", "partner": "x", "port": 70000.0}}, "not a TCP port"},
		// A partner that never answers fails within the pairing timeout.
		{map[string]any{"agent_burnin_fio_network_pairing_timeout": 2.0, "agent_burnin_fio_network_config": fmt.Sprintf(`{"role": "reader", "partner": "127.0.0.1", "port": %d}`, port)}, "no writer answered at 127.0.0.1:" + strconv.Itoa(port) + " within 2s"},
	} {
		start := time.Now()
		res := runStep(t, c, "burnin_network", map[string]any{"driver_info": tc.di})
		assert.Less(t, time.Since(start), 10*time.Second)
		require.Equal(t, StatusFailed, res["command_status"], "%v", tc.di)
		assert.Contains(t, res["command_error"].(map[string]any)["details"], tc.want)
	}
}
