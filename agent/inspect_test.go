package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIPACallbackRetryWaits(t *testing.T) {
	// tenacity's wait_exponential(multiplier=1.5, min=5, max=30) as IPA's
	// call_inspector uses it, after failures 1..4 of 5 attempts.
	want := []time.Duration{5 * time.Second, 5 * time.Second, 6 * time.Second, 12 * time.Second}
	for i, w := range want {
		assert.Equal(t, w, ipaCallbackRetry.wait(i+1), "wait after attempt %d", i+1)
	}
	assert.Equal(t, 30*time.Second, ipaCallbackRetry.wait(6), "capped at 30 s")
	assert.Equal(t, 5, ipaCallbackRetry.attempts)
}

// callbackServer answers the inspection callback with the given
// statuses in turn (the last repeats); 0 means "drop the connection".
type callbackServer struct {
	mu       sync.Mutex
	statuses []int
	calls    int
	headers  []http.Header
}

func (c *callbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	st := c.statuses[min(c.calls, len(c.statuses)-1)]
	c.calls++
	c.headers = append(c.headers, r.Header.Clone())
	c.mu.Unlock()
	if st == 0 {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
		return
	}
	w.WriteHeader(st)
	if st < 300 {
		fmt.Fprint(w, `{"uuid": "node-from-inspector"}`)
	} else {
		fmt.Fprint(w, `{"error": {"message": "no"}}`)
	}
}

func TestInspectionCallbackRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int
		wantCalls int
		wantUUID  string
	}{
		{name: "accepted at once", statuses: []int{200}, wantCalls: 1, wantUUID: "node-from-inspector"},
		{name: "202 is accepted too", statuses: []int{202}, wantCalls: 1, wantUUID: "node-from-inspector"},
		{name: "5xx is retried", statuses: []int{500, 503, 200}, wantCalls: 3, wantUUID: "node-from-inspector"},
		{name: "409 is retried", statuses: []int{409, 200}, wantCalls: 2, wantUUID: "node-from-inspector"},
		{name: "a dropped connection is retried", statuses: []int{0, 200}, wantCalls: 2, wantUUID: "node-from-inspector"},
		{name: "400 is final", statuses: []int{400, 200}, wantCalls: 1},
		{name: "404 is final", statuses: []int{404, 200}, wantCalls: 1},
		{name: "403 is final", statuses: []int{403}, wantCalls: 1},
		{name: "5xx forever gives up after IPA's 5 attempts", statuses: []int{500}, wantCalls: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := &callbackServer{statuses: tc.statuses}
			srv := httptest.NewServer(cs)
			t.Cleanup(srv.Close)
			a := newTestAgent(t, "ipa-inspection-callback-url="+srv.URL+"/v1/continue ipa-inspection-collectors=default")
			var waits []time.Duration
			a.callbackRetry = callbackRetry{attempts: ipaCallbackRetry.attempts, wait: func(n int) time.Duration {
				waits = append(waits, ipaCallbackRetry.wait(n))
				return time.Millisecond
			}}
			uuid := a.inspect(context.Background())
			assert.Equal(t, tc.wantUUID, uuid)
			assert.Equal(t, tc.wantCalls, cs.calls)
			assert.Len(t, waits, tc.wantCalls-1, "one wait between attempts")
			for _, h := range cs.headers {
				assert.Empty(t, h.Get(versionHeader), "the callback carries no microversion header, as IPA's")
				assert.Equal(t, "application/json", h.Get("Content-Type"))
			}
		})
	}
}

func TestInspectionCallbackStopsWithTheContext(t *testing.T) {
	cs := &callbackServer{statuses: []int{503}}
	srv := httptest.NewServer(cs)
	t.Cleanup(srv.Close)
	a := newTestAgent(t, "ipa-inspection-callback-url="+srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.Equal(t, "", a.inspect(ctx))
	assert.Less(t, time.Since(start), 3*time.Second, "IPA's 5 s wait was not cut short by the context")
	assert.Equal(t, 1, cs.calls)
}

// waitingHardware records that inspection waited before collecting.
type waitingHardware struct {
	fakeHardware
	mu     sync.Mutex
	events []string
}

func (w *waitingHardware) WaitForInspection(context.Context) {
	w.mu.Lock()
	w.events = append(w.events, "wait")
	w.mu.Unlock()
}

func (w *waitingHardware) InspectionData(ctx context.Context, c []string) (map[string]any, error) {
	w.mu.Lock()
	w.events = append(w.events, "collect")
	w.mu.Unlock()
	return w.fakeHardware.InspectionData(ctx, c)
}

func TestInspectionWaitsBeforeCollecting(t *testing.T) {
	srv := httptest.NewServer(&callbackServer{statuses: []int{200}})
	t.Cleanup(srv.Close)
	hw := &waitingHardware{}
	a := newTestAgent(t, "ipa-inspection-callback-url="+srv.URL, WithHardware(hw))
	a.inspect(context.Background())
	assert.Equal(t, []string{"wait", "collect"}, hw.events)
}

// conflictIronic answers lookups with 409 (node locked) a few times.
type conflictIronic struct {
	mu        sync.Mutex
	conflicts int
	lookups   []time.Time
}

func (c *conflictIronic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case r.URL.Path == "/":
		fmt.Fprint(w, `{"default_version": {"version": "1.82"}}`)
	case r.URL.Path == "/v1/lookup":
		c.lookups = append(c.lookups, time.Now())
		if len(c.lookups) <= c.conflicts {
			w.WriteHeader(409)
			fmt.Fprint(w, `{"error_message": "{\"faultstring\": \"Node node-1 is locked by host conductor-1, please retry after the current operation is completed.\"}"}`)
			return
		}
		fmt.Fprint(w, `{"node": {"uuid": "node-1"}, "config": {"heartbeat_timeout": 300, "agent_token": "`+strings.Repeat("t", 43)+`"}}`)
	default:
		w.WriteHeader(202)
	}
}

func TestLookupRetriesALockedNodeAfterAboutASecond(t *testing.T) {
	ci := &conflictIronic{conflicts: 2}
	srv := httptest.NewServer(ci)
	t.Cleanup(srv.Close)
	// A long lookup interval: were 409 backed off like an Ironic that is
	// down, the second lookup would come 10 s or more after the first.
	a := newTestAgent(t, "ipa-api-url="+srv.URL+" ipa-lookup-interval=20")
	require.NoError(t, a.discover(context.Background()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.lookupLoop(ctx, "node-1"))
	require.Len(t, ci.lookups, 3)
	for i := 1; i < 3; i++ {
		gap := ci.lookups[i].Sub(ci.lookups[i-1])
		assert.GreaterOrEqual(t, gap, 700*time.Millisecond, "lookup %d came too soon", i+1)
		assert.Less(t, gap, 2*time.Second, "lookup %d waited the long back-off", i+1)
	}
}

func TestLockedRetryWaitIsAboutASecond(t *testing.T) {
	for range 100 {
		w := lockedRetryWait()
		assert.GreaterOrEqual(t, w, 750*time.Millisecond)
		assert.Less(t, w, 1250*time.Millisecond)
	}
}

func TestLookupConfigIsHonouredOrLoggedOnce(t *testing.T) {
	var logs bytes.Buffer
	a := newTestAgent(t, "ipa-api-url=http://127.0.0.1:1", WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	// Ironic master's ramdisk.config(), as a redfish node gets it.
	cfg := map[string]any{
		"metrics":                        map[string]any{"backend": "statsd"},
		"metrics_statsd":                 map[string]any{"statsd_host": "localhost", "statsd_port": 8125.0},
		"heartbeat_timeout":              300.0,
		"agent_containers":               map[string]any{"allow_arbitrary_containers": false},
		"agent_token":                    strings.Repeat("x", 43),
		"agent_token_required":           true,
		"agent_md5_checksum_enable":      false,
		"disable_deep_image_inspection":  true,
		"permitted_image_formats":        []any{"raw", "qcow2"},
		"agent_skip_bmc_detect":          true,
		"enable_bios_bootloader_install": true,
		"tls_min_version":                "1.2",
		"tls_cipher_suites":              "ECDHE-RSA-AES128-GCM-SHA256",
		"a_key_from_the_future":          "x",
	}
	require.False(t, a.cfg.EnableBIOSBootloaderInstall)
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n"}, Config: cfg})
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n"}, Config: cfg})

	assert.True(t, a.cfg.EnableBIOSBootloaderInstall, "enable_bios_bootloader_install from Ironic turns it on, as in IPA")
	out := logs.String()
	for _, k := range []string{"disable_deep_image_inspection", "metrics", "metrics_statsd", "agent_containers", "a_key_from_the_future"} {
		assert.Equal(t, 1, strings.Count(out, "key="+k+" "), "%s logged as ignored exactly once:\n%s", k, out)
	}
	for _, k := range []string{"heartbeat_timeout", "agent_token", "agent_md5_checksum_enable", "permitted_image_formats", "agent_skip_bmc_detect", "enable_bios_bootloader_install", "tls_min_version", "tls_cipher_suites"} {
		assert.NotContains(t, out, "key="+k+" ", "%s is honoured, not ignored", k)
	}
}

func TestLookupConfigFalseTurnsNothingOff(t *testing.T) {
	a := newTestAgent(t, "ipa-api-url=http://127.0.0.1:1 ipa-enable-bios-bootloader-install=1")
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n"}, Config: map[string]any{"enable_bios_bootloader_install": false}})
	assert.True(t, a.cfg.EnableBIOSBootloaderInstall, "IPA only overrides with a true value")
	assert.Empty(t, unhonouredLookupKeys(map[string]any{"disable_deep_image_inspection": false, "tls_cipher_suites": "", "agent_containers": nil}))
	// What Ironic sends by default: the noop metrics backend asks for
	// nothing, so neither metrics key is reported as ignored.
	assert.Empty(t, unhonouredLookupKeys(map[string]any{"metrics": map[string]any{"backend": "noop"},
		"metrics_statsd": map[string]any{"statsd_host": "localhost", "statsd_port": 8125.0}}))
}

func TestSkipBMCDetectFollowsLookup(t *testing.T) {
	cfg, err := ParseConfig("ipa-api-url=http://127.0.0.1:1", nil)
	require.NoError(t, err)
	m := NewMachine(cfg, quietLogger())
	a, err := New(cfg, WithLogger(quietLogger()), WithHardware(m))
	require.NoError(t, err)
	assert.False(t, m.skipBMC())
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "n"}, Config: map[string]any{"agent_skip_bmc_detect": true}})
	assert.True(t, m.skipBMC())
}
