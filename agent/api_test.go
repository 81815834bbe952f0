package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/logring"
)

// fakeHardware stands in for the inventory in unit tests.
type fakeHardware struct{ macs []string }

func (f fakeHardware) MACs(context.Context) ([]string, error) { return f.macs, nil }
func (f fakeHardware) Inventory(context.Context) (any, error) {
	return map[string]any{"interfaces": []any{map[string]any{"name": "eth0", "mac_address": "52:54:00:12:34:56"}}}, nil
}
func (f fakeHardware) InspectionData(ctx context.Context, c []string) (map[string]any, error) {
	inv, _ := f.Inventory(ctx)
	return map[string]any{"inventory": inv}, nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestAgent(t *testing.T, cmdline string, opts ...Option) *Agent {
	t.Helper()
	cfg, err := ParseConfig(cmdline, nil)
	require.NoError(t, err)
	a, err := New(cfg, append([]Option{WithLogger(quietLogger()), WithHardware(fakeHardware{macs: []string{"52:54:00:12:34:56"}})}, opts...)...)
	require.NoError(t, err)
	return a
}

type apiClient struct {
	t   *testing.T
	srv *httptest.Server
}

func newAPI(t *testing.T, a *Agent) *apiClient {
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &apiClient{t: t, srv: srv}
}

func (c *apiClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.srv.URL+path, rd)
	require.NoError(c.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	assert.Equal(c.t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	require.NoError(c.t, json.Unmarshal(data, &out), "body %q", data)
	return resp.StatusCode, out
}

func (c *apiClient) post(name string, params map[string]any, query string) (int, map[string]any) {
	return c.do(http.MethodPost, "/v1/commands/"+query, map[string]any{"name": name, "params": params})
}

// blockingExt is a test extension whose commands wait for release.
type blockingExt struct {
	release chan struct{}
	entered chan struct{}
}

func (b *blockingExt) Name() string { return "test" }
func (b *blockingExt) Commands() map[string]Command {
	wait := func(ctx context.Context, c *Call) (any, error) {
		c.SetProgress(map[string]any{"done": 1})
		b.entered <- struct{}{}
		<-b.release
		return "finished", nil
	}
	return map[string]Command{
		"async": {Async: true, Run: wait},
		"sync":  {Run: wait},
		"quick": {Run: func(context.Context, *Call) (any, error) { return "quick", nil }},
		"panic_async": {Async: true, Run: func(_ context.Context, c *Call) (any, error) {
			s := []int{}
			return s[len(c.Params)+1], nil // a runtime panic, not an explicit one
		}},
		"panic_sync": {Run: func(context.Context, *Call) (any, error) { panic("sync boom") }},
		"fail":       {Run: func(context.Context, *Call) (any, error) { return nil, errors.New("disk on fire") }},
	}
}

func TestRootAndV1Documents(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	code, root := c.do(http.MethodGet, "/", nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, "OpenStack Ironic Python Agent API", root["name"])
	assert.Equal(t, "Ironic Python Agent is a provisioning agent for OpenStack Ironic", root["description"])
	def := root["default_version"].(map[string]any)
	assert.Equal(t, "v1", def["id"])
	links := def["links"].([]any)
	assert.Equal(t, c.srv.URL+"/v1", links[0].(map[string]any)["href"])
	assert.Equal(t, "describedby", links[1].(map[string]any)["rel"])
	assert.Len(t, root["versions"], 1)

	code, v1 := c.do(http.MethodGet, "/v1/", nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, c.srv.URL+"/v1/commands", v1["commands"].([]any)[0].(map[string]any)["href"])
	assert.Equal(t, c.srv.URL+"/status", v1["status"].([]any)[1].(map[string]any)["href"])
	assert.Equal(t, "application/vnd.openstack.ironic-python-agent.v1+json", v1["media_types"].([]any)[0].(map[string]any)["type"])

	code, body := c.do(http.MethodGet, "/v1/nope", nil)
	assert.Equal(t, 404, code)
	assert.Equal(t, "Client", body["faultcode"])
	assert.IsType(t, "", body["faultstring"])

	code, body = c.do(http.MethodDelete, "/v1/commands/", nil)
	assert.Equal(t, 405, code)
	assert.IsType(t, "", body["faultstring"])
}

func TestStatus(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	for _, p := range []string{"/v1/status", "/status"} {
		code, st := c.do(http.MethodGet, p, nil)
		assert.Equal(t, 200, code)
		assert.Equal(t, IPAVersion, st["version"])
		assert.InDelta(t, float64(time.Now().Unix()), st["started_at"], 60)
		assert.Contains(t, st, "phase")
		assert.Contains(t, st, "goipa_version")
	}
}

func TestSyncCommandAndList(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	code, res := c.post("standby.sync", map[string]any{}, "?wait=true")
	assert.Equal(t, 200, code)
	assert.Equal(t, "sync", res["command_name"])
	assert.Equal(t, StatusSucceeded, res["command_status"])
	assert.Nil(t, res["command_error"])
	assert.Nil(t, res["command_result"])
	assert.Len(t, res["id"], 36)
	assert.NotContains(t, res, "command_params")

	code, list := c.do(http.MethodGet, "/v1/commands/", nil)
	assert.Equal(t, 200, code)
	require.Len(t, list["commands"], 1)
	assert.Equal(t, res["id"], list["commands"].([]any)[0].(map[string]any)["id"])

	code, one := c.do(http.MethodGet, "/v1/commands/"+res["id"].(string), nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, res["id"], one["id"])

	code, body := c.do(http.MethodGet, "/v1/commands/no-such-id", nil)
	assert.Equal(t, 404, code)
	assert.Equal(t, "Not found: Command Result with id no-such-id not found.", body["faultstring"])
}

func TestRequestErrors(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	for _, tc := range []struct {
		name  string
		body  any
		code  int
		fault string
	}{
		{"unknown extension", map[string]any{"name": "nope.cmd", "params": map[string]any{}}, 404, "Not found: Extension with id nope not found."},
		{"unknown command", map[string]any{"name": "standby.nope", "params": map[string]any{}}, 400, "Invalid command: Unknown command: standby.nope"},
		{"no dot", map[string]any{"name": "standby", "params": map[string]any{}}, 400, "Invalid command: Command name must be of the form <extension>.<name>"},
		{"no params", map[string]any{"name": "standby.sync"}, 400, "400 Bad Request: Missing or invalid name or params"},
		{"params not object", map[string]any{"name": "standby.sync", "params": []int{1}}, 400, "400 Bad Request: Missing or invalid name or params"},
		{"no name", map[string]any{"params": map[string]any{}}, 400, "400 Bad Request: Missing or invalid name or params"},
		{"bad json", "{not json", 400, ""},
	} {
		code, body := c.do(http.MethodPost, "/v1/commands/", tc.body)
		assert.Equal(t, tc.code, code, tc.name)
		assert.Equal(t, "Client", body["faultcode"], tc.name)
		if tc.fault != "" {
			assert.Equal(t, tc.fault, body["faultstring"], tc.name)
		}
	}
	// The agent survived all of that.
	code, _ := c.post("standby.sync", map[string]any{}, "")
	assert.Equal(t, 200, code)
}

func TestBodyLimit(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	big := `{"name": "standby.sync", "params": {"x": "` + strings.Repeat("a", MaxRequestBody) + `"}}`
	code, body := c.do(http.MethodPost, "/v1/commands/", big)
	assert.Equal(t, 413, code)
	assert.IsType(t, "", body["faultstring"])
}

func TestBusyOnlyWhileAsyncRuns(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	ext := &blockingExt{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	a.Register(ext)
	c := newAPI(t, a)

	code, res := c.post("test.async", map[string]any{}, "?wait=false")
	require.Equal(t, 200, code)
	assert.Equal(t, StatusRunning, res["command_status"])
	assert.Equal(t, "async", res["command_name"])
	<-ext.entered

	code, body := c.post("test.quick", map[string]any{}, "")
	assert.Equal(t, 409, code)
	assert.Equal(t, "Agent is busy: executing command async", body["faultstring"])
	assert.Contains(t, strings.ToLower(body["faultstring"].(string)), "agent is busy")

	// The running command shows its progress.
	_, list := c.do(http.MethodGet, "/v1/commands/", nil)
	assert.Equal(t, map[string]any{"done": float64(1)}, list["commands"].([]any)[0].(map[string]any)["progress"])
	_, st := c.do(http.MethodGet, "/v1/status", nil)
	assert.Equal(t, "test.async", st["command"].(map[string]any)["name"])

	close(ext.release)
	code, done := c.do(http.MethodGet, "/v1/commands/"+res["id"].(string)+"?wait=true", nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, StatusSucceeded, done["command_status"])
	assert.Equal(t, map[string]any{"result": "async: finished"}, done["command_result"])

	code, q := c.post("test.quick", map[string]any{}, "")
	assert.Equal(t, 200, code)
	assert.Equal(t, map[string]any{"result": "quick"}, q["command_result"])
}

func TestSyncCommandMakesSecondPostWait(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	ext := &blockingExt{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	a.Register(ext)
	c := newAPI(t, a)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, res := c.post("test.sync", map[string]any{}, "?wait=true")
		assert.Equal(t, 200, code)
		assert.Equal(t, map[string]any{"result": "finished"}, res["command_result"])
	}()
	<-ext.entered
	second := make(chan int, 1)
	go func() {
		code, _ := c.post("test.quick", map[string]any{}, "")
		second <- code
	}()
	select {
	case code := <-second:
		t.Fatalf("second POST answered %d while a sync command held the lock", code)
	case <-time.After(200 * time.Millisecond):
	}
	close(ext.release)
	assert.Equal(t, 200, <-second)
	wg.Wait()
}

func TestPanicsBecomeFailedResults(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	a.Register(&blockingExt{})
	c := newAPI(t, a)

	code, res := c.post("test.panic_async", map[string]any{}, "?wait=true")
	assert.Equal(t, 200, code)
	assert.Equal(t, StatusFailed, res["command_status"])
	e := res["command_error"].(map[string]any)
	assert.Equal(t, "CommandExecutionError", e["type"])
	assert.Equal(t, float64(500), e["code"])
	assert.Equal(t, "Command execution failed", e["message"])
	assert.Contains(t, e["details"], "panicked")

	code, res = c.post("test.panic_sync", map[string]any{}, "?wait=true")
	assert.Equal(t, 200, code)
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "test.panic_sync", res["command_name"], "a failed sync command keeps the dotted name")
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "sync boom")

	code, res = c.post("test.fail", map[string]any{}, "?wait=true")
	assert.Equal(t, 200, code)
	assert.Equal(t, "disk on fire", res["command_error"].(map[string]any)["details"])

	code, _ = c.post("test.quick", map[string]any{}, "")
	assert.Equal(t, 200, code, "the agent keeps serving")
}

func TestTokenRules(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	tok := strings.Repeat("t", 43)
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n1"}, Config: map[string]any{"agent_token": tok}})

	code, body := c.post("standby.sync", map[string]any{}, "")
	assert.Equal(t, 401, code)
	assert.Equal(t, "401 Unauthorized: Token invalid.", body["faultstring"])
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token=wrong")
	assert.Equal(t, 401, code)
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token="+tok)
	assert.Equal(t, 200, code)

	// Ironic 21.4 polls without a token: GETs stay open ...
	code, _ = c.do(http.MethodGet, "/v1/commands/", nil)
	assert.Equal(t, 200, code)
	code, _ = c.do(http.MethodGet, "/v1/commands/?agent_token=wrong", nil)
	assert.Equal(t, 401, code)
	// ... until a GET arrives with the token (newer Ironic): then they need it.
	code, _ = c.do(http.MethodGet, "/v1/commands/?agent_token="+tok, nil)
	assert.Equal(t, 200, code)
	code, _ = c.do(http.MethodGet, "/v1/commands/", nil)
	assert.Equal(t, 401, code)
	code, _ = c.do(http.MethodGet, "/v1/status", nil)
	assert.Equal(t, 200, code, "status never needs a token")

	// "******" from a later lookup keeps the token we have.
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n1"}, Config: map[string]any{"agent_token": "******"}})
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token="+tok)
	assert.Equal(t, 200, code)
	// A short token is ignored.
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n1"}, Config: map[string]any{"agent_token": "short"}})
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token="+tok)
	assert.Equal(t, 200, code)
}

func TestNoTokenYetAcceptsTokenlessPost(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	code, _ := c.post("standby.sync", map[string]any{}, "")
	assert.Equal(t, 200, code)
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token=guess")
	assert.Equal(t, 401, code)
}

func TestSteps(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	var seenArgs map[string]any
	a.Steps().Register(Clean, Step{Name: "test_wipe", Interface: "deploy", Priority: 99, Abortable: true,
		Run: func(ctx context.Context, sc *StepCall) (any, error) { seenArgs = sc.Args; return nil, nil }})
	a.Steps().Register(Clean, Step{Name: "burn", Interface: "deploy",
		ArgsInfo: map[string]ArgInfo{"duration": {Description: "seconds", Required: false}},
		Run:      func(ctx context.Context, sc *StepCall) (any, error) { return nil, errors.New("too hot") }})
	a.Steps().Register(Deploy, Step{Name: "test_write", Interface: "deploy",
		Run: func(ctx context.Context, sc *StepCall) (any, error) {
			return map[string]any{"result": "prepare_image: done"}, nil
		}})
	c := newAPI(t, a)
	node := map[string]any{"uuid": "n1"}

	code, res := c.post("clean.get_clean_steps", map[string]any{"node": node, "ports": []any{}}, "?wait=true")
	require.Equal(t, 200, code)
	cr := res["command_result"].(map[string]any)
	assert.Equal(t, map[string]any{"generic_hardware_manager": "1.1"}, cr["hardware_manager_version"])
	steps := map[string]map[string]any{}
	for _, s := range cr["clean_steps"].(map[string]any)["GenericHardwareManager"].([]any) {
		steps[s.(map[string]any)["step"].(string)] = s.(map[string]any)
	}
	burn, meta := steps["burn"], steps["test_wipe"]
	assert.Equal(t, map[string]any{"step": "test_wipe", "priority": float64(99), "interface": "deploy", "reboot_requested": false, "abortable": true}, meta)
	assert.Contains(t, steps, "erase_devices_metadata", "the built-in erase step is offered")
	assert.Equal(t, map[string]any{"duration": map[string]any{"description": "seconds", "required": false}}, burn["argsinfo"])
	assert.Equal(t, node, a.Node(), "the node is cached")

	code, res = c.post("deploy.get_deploy_steps", map[string]any{"node": node, "ports": []any{}}, "?wait=true")
	require.Equal(t, 200, code)
	ds := res["command_result"].(map[string]any)["deploy_steps"].(map[string]any)["GenericHardwareManager"].([]any)
	require.NotEmpty(t, ds)
	for _, d := range ds {
		assert.NotContains(t, d, "abortable", "deploy steps carry no abortable")
	}

	step := map[string]any{"step": "test_wipe", "priority": 10, "interface": "deploy", "reboot_requested": false, "abortable": true, "requires_ramdisk": true, "args": map[string]any{"k": "v"}}
	version := map[string]any{"generic_hardware_manager": "1.1"}
	code, res = c.post("clean.execute_clean_step", map[string]any{"step": step, "node": node, "ports": []any{}, "clean_version": version}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, "execute_clean_step", res["command_name"])
	assert.Equal(t, StatusSucceeded, res["command_status"])
	cres := res["command_result"].(map[string]any)
	assert.Nil(t, cres["clean_result"])
	assert.Equal(t, "test_wipe", cres["clean_step"].(map[string]any)["step"])
	assert.Equal(t, true, cres["clean_step"].(map[string]any)["requires_ramdisk"], "the step is echoed as received")
	assert.Equal(t, map[string]any{"k": "v"}, seenArgs)

	code, res = c.post("deploy.execute_deploy_step", map[string]any{"step": map[string]any{"step": "test_write", "interface": "deploy"}, "node": node, "deploy_version": version}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, map[string]any{"result": "prepare_image: done"}, res["command_result"].(map[string]any)["deploy_result"])

	code, res = c.post("clean.execute_clean_step", map[string]any{"step": step, "node": node, "clean_version": map[string]any{"generic_hardware_manager": "1.0"}}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, StatusVersionMismatch, res["command_status"])
	assert.Equal(t, "VersionMismatch", res["command_error"].(map[string]any)["type"])
	assert.Equal(t, float64(409), res["command_error"].(map[string]any)["code"])

	code, res = c.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "nope", "interface": "deploy"}, "node": node, "clean_version": nil}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "Could not find method: nope", res["command_error"].(map[string]any)["details"])

	code, res = c.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "burn", "interface": "deploy"}, "node": node}, "?wait=true")
	require.Equal(t, 200, code)
	e := res["command_error"].(map[string]any)
	assert.Equal(t, "CleaningError", e["type"])
	assert.Equal(t, "Clean step failed", e["message"])
	assert.Equal(t, "too hot", e["details"])

	code, res = c.post("clean.execute_clean_step", map[string]any{"step": "not-an-object"}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "InvalidCommandParamsError", res["command_error"].(map[string]any)["type"])
}

func TestCollectSystemLogs(t *testing.T) {
	logs := logring.New(1 << 20)
	logs.Write([]byte("level=INFO msg=hello\n"))
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1", WithLogBuffer(logs)))
	code, res := c.post("log.collect_system_logs", map[string]any{}, "?wait=true")
	require.Equal(t, 200, code)
	b64 := res["command_result"].(map[string]any)["system_logs"].(string)
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	for _, name := range []string{"journal", "dmesg", "cmdline", "mount", "ip_addr", "lsblk", "mdstat", "inventory.json", "status.json", "efibootmgr"} {
		assert.Contains(t, files, name)
	}
	assert.Contains(t, files["journal"], "msg=hello")
	assert.Contains(t, files["inventory.json"], "52:54:00:12:34:56")
	assert.Contains(t, files["ip_addr"], "lo")
}

func TestMetrics(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	c.post("standby.sync", map[string]any{}, "")
	resp, err := http.Get(c.srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(b), `goipa_commands_total{command="standby.sync",status="SUCCEEDED"} 1`)
	assert.Contains(t, string(b), "goipa_command_duration_seconds")
}

func TestSetNodeInfoOnlyStandalone(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	c := newAPI(t, a)
	code, res := c.post("poll.set_node_info", map[string]any{"node_info": map[string]any{"node": map[string]any{"uuid": "n9"}, "config": map[string]any{}}}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, StatusSucceeded, res["command_status"])
	assert.Equal(t, "n9", a.Node()["uuid"])

	b := newTestAgent(t, "ipa-api-url=http://127.0.0.1:1")
	cb := newAPI(t, b)
	code, res = cb.post("poll.set_node_info", map[string]any{"node_info": map[string]any{"node": map[string]any{"uuid": "n9"}}}, "?wait=true")
	assert.Equal(t, 400, code, "IPA raises InvalidCommandError to the caller")
	assert.Contains(t, res["faultstring"], "standalone mode")
	_, list := cb.do("GET", "/v1/commands/", nil)
	assert.Empty(t, list["commands"], "a refused command leaves no result")
}
