package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeIronic records what an agent sends and answers like Ironic 21.4.
type fakeIronic struct {
	mu          sync.Mutex
	version     string
	lookupFails int // answer 500 to this many lookups first
	wipeAfter   int // answer "token wiped" to heartbeat number wipeAfter (1-based), 0 = never
	lookups     []*http.Request
	heartbeats  []map[string]any
	hbHeaders   []string
	hbTimes     []time.Time
	tokens      []string
}

func (f *fakeIronic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/":
		fmt.Fprintf(w, `{"name": "OpenStack Ironic API", "default_version": {"id": "v1", "version": %q, "min_version": "1.1"}}`, f.version)
	case r.URL.Path == "/v1/lookup":
		f.lookups = append(f.lookups, r)
		if len(f.lookups) <= f.lookupFails {
			w.WriteHeader(500)
			fmt.Fprint(w, `{"error_message": "{\"faultcode\": \"Server\", \"faultstring\": \"boom\", \"debuginfo\": null}"}`)
			return
		}
		tok := strings.Repeat(fmt.Sprint(len(f.lookups)%10), 43)
		f.tokens = append(f.tokens, tok)
		fmt.Fprintf(w, `{"node": {"uuid": "node-1", "properties": {}}, "config": {"heartbeat_timeout": 30, "agent_token": %q, "agent_token_required": true}}`, tok)
	case strings.HasPrefix(r.URL.Path, "/v1/heartbeat/"):
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.heartbeats = append(f.heartbeats, body)
		f.hbHeaders = append(f.hbHeaders, r.Header.Get(versionHeader))
		f.hbTimes = append(f.hbTimes, time.Now())
		if f.wipeAfter > 0 && len(f.heartbeats) == f.wipeAfter {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\", \"debuginfo\": null}"}`)
			return
		}
		w.WriteHeader(202)
	default:
		w.WriteHeader(404)
	}
}

func (f *fakeIronic) snapshot() (lookups int, hbs []map[string]any, headers []string, times []time.Time, tokens []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lookups), append([]map[string]any(nil), f.heartbeats...), append([]string(nil), f.hbHeaders...), append([]time.Time(nil), f.hbTimes...), append([]string(nil), f.tokens...)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startAgent(t *testing.T, ironicURL string, extra string) (*Agent, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	a := newTestAgent(t, fmt.Sprintf("ipa-api-url=%s ipa-lookup-interval=0.02 ipa-advertise-host=127.0.0.1 ipa-advertise-port=%d %s", ironicURL, port, extra), WithListener(ln))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop within 10 s of cancellation")
		}
	})
	return a, port
}

func TestLifecycleAgainstIronic182(t *testing.T) {
	fi := &fakeIronic{version: "1.82", lookupFails: 2}
	srv := httptest.NewServer(fi)
	defer srv.Close()
	a, port := startAgent(t, srv.URL, "")

	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	lookups, hbs, headers, _, tokens := fi.snapshot()
	assert.Equal(t, 3, lookups, "two 500s, then success: lookup retried with backoff")
	fi.mu.Lock()
	lr := fi.lookups[2]
	fi.mu.Unlock()
	assert.Equal(t, "1.62", lr.Header.Get(versionHeader))
	assert.Equal(t, "52:54:00:12:34:56", lr.URL.Query().Get("addresses"))
	assert.Equal(t, "application/json", lr.Header.Get("Accept"))

	hb := hbs[0]
	assert.Equal(t, "1.68", headers[0])
	assert.Equal(t, fmt.Sprintf("https://127.0.0.1:%d", port), hb["callback_url"], "auto-TLS at API >= 1.68")
	assert.Equal(t, tokens[0], hb["agent_token"])
	assert.Equal(t, IPAVersion, hb["agent_version"])
	assert.NotContains(t, hb, "agent_status")
	pemCA, _ := hb["agent_verify_ca"].(string)
	require.Contains(t, pemCA, "BEGIN CERTIFICATE")

	// Ironic can call the agent over HTTPS, verifying with that PEM and the IP.
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM([]byte(pemCA)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}, Timeout: 5 * time.Second}
	resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d/v1/commands/?wait=false&agent_token=%s", port, tokens[0]), "application/json",
		strings.NewReader(`{"name": "standby.power_off", "params": {}}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"command_status":"RUNNING"`)

	// A simulated power-off makes the agent start over: a new lookup follows.
	waitFor(t, 10*time.Second, "the lookup after the simulated power off", func() bool { n, _, _, _, _ := fi.snapshot(); return n >= 4 })
	waitFor(t, 10*time.Second, "a heartbeat with the new token", func() bool {
		_, hbs, _, _, tokens := fi.snapshot()
		return len(tokens) >= 2 && hbs[len(hbs)-1]["agent_token"] == tokens[len(tokens)-1]
	})
	assert.Empty(t, a.cmds.Results(), "command history is forgotten after the simulated reboot")
	_, hbs, _, _, _ = fi.snapshot()
	assert.Equal(t, pemCA, hbs[len(hbs)-1]["agent_verify_ca"], "the certificate never changes during the agent's life")
}

func TestTokenWipedMeansStartOver(t *testing.T) {
	fi := &fakeIronic{version: "1.82", wipeAfter: 1}
	srv := httptest.NewServer(fi)
	defer srv.Close()
	a, _ := startAgent(t, srv.URL, "ipa-enable-auto-tls=0")
	a.cmds.Register(Commands{Ext: "x", Cmds: map[string]Command{"y": {Run: func(context.Context, *Call) (any, error) { return nil, nil }}}})
	waitFor(t, 10*time.Second, "a second lookup after the token was wiped", func() bool { n, _, _, _, _ := fi.snapshot(); return n >= 2 })
	waitFor(t, 10*time.Second, "a heartbeat after the second lookup", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 2 })
	_, hbs, _, _, tokens := fi.snapshot()
	assert.Equal(t, tokens[1], hbs[1]["agent_token"])
	assert.True(t, strings.HasPrefix(hbs[1]["callback_url"].(string), "http://"), "auto-TLS off")
}

func TestHeartbeatFieldsFollowTheAPIVersion(t *testing.T) {
	v := func(s string) microversion { m, err := parseMicroversion(s); require.NoError(t, err); return m }
	assert.Equal(t, map[string]any{"callback_url": "http://x:1"}, heartbeatBody(v("1.31"), "http://x:1", "tok", "9.4.2", "PEM"))
	assert.Equal(t, map[string]any{"callback_url": "http://x:1", "agent_version": "9.4.2"}, heartbeatBody(v("1.36"), "http://x:1", "tok", "9.4.2", "PEM"))
	assert.Equal(t, map[string]any{"callback_url": "http://x:1", "agent_version": "9.4.2", "agent_token": "tok"}, heartbeatBody(v("1.62"), "http://x:1", "tok", "9.4.2", "PEM"))
	assert.Equal(t, map[string]any{"callback_url": "http://x:1", "agent_version": "9.4.2", "agent_token": "tok", "agent_verify_ca": "PEM"}, heartbeatBody(v("1.115"), "http://x:1", "tok", "9.4.2", "PEM"))
	assert.Equal(t, "1.62", v("1.115").Capped(lookupVersion))
	assert.Equal(t, "1.50", v("1.50").Capped(heartbeatVersion))
}

func TestTokenWipedIsOnlyTheTokenRefusal(t *testing.T) {
	e := &IronicError{Op: "heartbeat", Status: 400, FaultString: "Invalid or missing agent token received."}
	assert.True(t, tokenWiped(e))
	e = &IronicError{Op: "heartbeat", Status: 400, FaultString: "Agent did not transmit a version, and a version is required."}
	assert.False(t, tokenWiped(e))
	e = &IronicError{Op: "heartbeat", Status: 409, FaultString: "Invalid or missing agent token received."}
	assert.False(t, tokenWiped(e), "only a 400 ends the operation")
}

func TestForcedHeartbeatAfterAsyncCommand(t *testing.T) {
	fi := &fakeIronic{version: "1.82"}
	srv := httptest.NewServer(fi)
	defer srv.Close()
	a, port := startAgent(t, srv.URL, "ipa-enable-auto-tls=0")
	release := make(chan struct{})
	a.cmds.Register(Commands{Ext: "t", Cmds: map[string]Command{"slow": {Async: true, Run: func(ctx context.Context, c *Call) (any, error) {
		<-release
		return nil, nil
	}}}})
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?agent_token=%s", port, tokens[0]), "application/json", strings.NewReader(`{"name": "t.slow", "params": {}}`))
	require.NoError(t, err)
	resp.Body.Close()
	close(release)
	ended := time.Now()
	// With heartbeat_timeout 30 the next regular beat is 9-18 s away; the
	// forced one comes within ~5 s of the first.
	waitFor(t, 8*time.Second, "the forced heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 2 })
	_, _, _, times, _ := fi.snapshot()
	assert.WithinDuration(t, ended, times[1], 6*time.Second)
}

func TestLockdownStopsTheAPI(t *testing.T) {
	fi := &fakeIronic{version: "1.82"}
	srv := httptest.NewServer(fi)
	defer srv.Close()
	_, port := startAgent(t, srv.URL, "ipa-enable-auto-tls=0")
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true&agent_token=%s", port, tokens[0]), "application/json", strings.NewReader(`{"name": "system.lockdown", "params": {}}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), `"command_status":"SUCCEEDED"`, "lockdown answers before the API stops")
	waitFor(t, 10*time.Second, "the API to stop", func() bool {
		_, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", port))
		return err != nil
	})
	// No more heartbeats after a lockdown.
	_, before, _, _, _ := fi.snapshot()
	time.Sleep(6 * time.Second)
	_, after, _, _, _ := fi.snapshot()
	assert.Equal(t, len(before), len(after), "heartbeats go on after the lockdown")
}
