package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/rescue"
)

func newFakeIronicServer(t *testing.T, fi *fakeIronic) string {
	srv := httptest.NewServer(fi)
	t.Cleanup(srv.Close)
	return srv.URL
}

// startAgentWith is startAgent with options.
func startAgentWith(t *testing.T, ironicURL, extra string, opts ...Option) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	a := newTestAgent(t, fmt.Sprintf("ipa-api-url=%s ipa-lookup-interval=0.02 ipa-advertise-host=127.0.0.1 ipa-advertise-port=%d %s", ironicURL, port, extra),
		append([]Option{WithListener(ln)}, opts...)...)
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
	return port
}

// rescueFilesIn points the rescue files into a temporary directory.
func rescueFilesIn(t *testing.T) (password, marker string) {
	dir := t.TempDir()
	oldP, oldM := rescuePasswordFile, rescuedMarker
	rescuePasswordFile = filepath.Join(dir, "etc/ipa-rescue-config/ipa-rescue-password")
	rescuedMarker = filepath.Join(dir, "etc/.rescued")
	t.Cleanup(func() { rescuePasswordFile, rescuedMarker = oldP, oldM })
	return rescuePasswordFile, rescuedMarker
}

// postRescue sends finalize_rescue to a running agent and decodes the result.
func postRescue(t *testing.T, port int, token string, params string) map[string]any {
	t.Helper()
	code, res := postRescueStatus(t, port, token, params)
	require.Equal(t, 200, code, res)
	return res
}

// postRescueStatus is postRescue for a request the agent may refuse.
func postRescueStatus(t *testing.T, port int, token string, params string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/commands/?wait=true&agent_token=%s", port, token), "application/json",
		strings.NewReader(`{"name": "rescue.finalize_rescue", "params": `+params+`}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var res map[string]any
	require.NoError(t, json.Unmarshal(body, &res), string(body))
	return resp.StatusCode, res
}

func apiUp(port int) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", port))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// In the ramdisk: the hash is stored where IPA stores it, the marker is
// made, the answer is SUCCEEDED, then the API and heartbeats stop and the
// login hook gets the hash.
func TestFinalizeRescueInTheRamdisk(t *testing.T) {
	pwFile, marker := rescueFilesIn(t)
	fi := &fakeIronic{version: "1.82"}
	srv := newFakeIronicServer(t, fi)
	got := make(chan string, 1)
	port := startAgentWith(t, srv, "ipa-enable-auto-tls=0", WithRealPower(true), WithRescue(func(h string) { got <- h }))
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()

	hash, err := rescue.HashSHA512("tenant pw")
	require.NoError(t, err)
	res := postRescue(t, port, tokens[0], fmt.Sprintf(`{"rescue_password": %q, "hashed": true}`, hash))
	assert.Equal(t, "SUCCEEDED", res["command_status"], res)
	assert.Nil(t, res["command_result"])

	b, err := os.ReadFile(pwFile)
	require.NoError(t, err)
	assert.Equal(t, hash, string(b), "the hash is stored as sent")
	st, err := os.Stat(pwFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	assert.FileExists(t, marker)

	select {
	case h := <-got:
		assert.Equal(t, hash, h)
	case <-time.After(5 * time.Second):
		t.Fatal("the rescue login was not started")
	}
	waitFor(t, 10*time.Second, "the API to stop", func() bool { return !apiUp(port) })
	_, before, _, _, _ := fi.snapshot()
	time.Sleep(6 * time.Second)
	_, after, _, _, _ := fi.snapshot()
	assert.Equal(t, len(before), len(after), "heartbeats go on after the rescue")
}

// Ironic's plaintext fallback: the agent hashes with SHA-256 crypt.
func TestFinalizeRescuePlaintextFallback(t *testing.T) {
	pwFile, _ := rescueFilesIn(t)
	fi := &fakeIronic{version: "1.82"}
	srv := newFakeIronicServer(t, fi)
	_, port := startAgent(t, srv, "ipa-enable-auto-tls=0 goipa-power=system")
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()
	res := postRescue(t, port, tokens[0], `{"rescue_password": "plain pw"}`)
	assert.Equal(t, "SUCCEEDED", res["command_status"], res)
	b, err := os.ReadFile(pwFile)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "$5$"), "IPA hashes plaintext with SHA-256 crypt, got %q", b)
	assert.True(t, rescue.VerifyPassword(string(b), "plain pw"))
	waitFor(t, 10*time.Second, "the API to stop", func() bool { return !apiUp(port) })
}

// A host agent simulates the account: nothing is written, the API stops.
func TestFinalizeRescueOnAHost(t *testing.T) {
	pwFile, marker := rescueFilesIn(t)
	fi := &fakeIronic{version: "1.82"}
	srv := newFakeIronicServer(t, fi)
	_, port := startAgent(t, srv, "ipa-enable-auto-tls=0")
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()
	res := postRescue(t, port, tokens[0], `{"rescue_password": "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "hashed": true}`)
	assert.Equal(t, "SUCCEEDED", res["command_status"], res)
	assert.NoFileExists(t, pwFile)
	assert.NoFileExists(t, marker)
	waitFor(t, 10*time.Second, "the API to stop", func() bool { return !apiUp(port) })
}

// Bad input: IPA's error shape, nothing stored, the API keeps serving and
// a good request afterwards still works.
func TestFinalizeRescueRefusesBadInput(t *testing.T) {
	pwFile, marker := rescueFilesIn(t)
	fi := &fakeIronic{version: "1.82"}
	srv := newFakeIronicServer(t, fi)
	_, port := startAgent(t, srv, "ipa-enable-auto-tls=0 goipa-power=system")
	waitFor(t, 10*time.Second, "the first heartbeat", func() bool { _, hbs, _, _, _ := fi.snapshot(); return len(hbs) >= 1 })
	_, _, _, _, tokens := fi.snapshot()
	for _, c := range []struct{ params, details string }{
		{`{"rescue_password": "not a hash", "hashed": true}`, "must start with $5$ or $6$"},
		{`{"rescue_password": "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "hashed": true}`, "must start with $5$ or $6$"},
		{`{"rescue_password": "$6$saltstring$short", "hashed": true}`, "not 86"},
		{`{"rescue_password": "$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", "hashed": true}`, "outside 1000"},
		{`{"rescue_password": "", "hashed": false}`, "non-empty string"},
		{`{"hashed": true}`, "non-empty string"},
		{`{"rescue_password": 42}`, "non-empty string"},
		{`{"rescue_password": "pw", "hashed": "yes"}`, "hashed must be a boolean"},
		{`{"rescue_password": "` + strings.Repeat("p", 1025) + `", "hashed": false}`, "longer than 1024 bytes"},
	} {
		// IPA raises InvalidCommandParamsError to the caller: a 400, which
		// makes Ironic retry with the plaintext password where allowed.
		code, res := postRescueStatus(t, port, tokens[0], c.params)
		assert.Equal(t, 400, code, c.params)
		assert.Contains(t, res["faultstring"], "Invalid command parameters", c.params)
		assert.Contains(t, res["faultstring"], c.details, c.params)
		assert.NoFileExists(t, pwFile, c.params)
		assert.NoFileExists(t, marker, c.params)
	}
	time.Sleep(time.Second)
	assert.True(t, apiUp(port), "the API stopped after refusing a bad password")
	res := postRescue(t, port, tokens[0], `{"rescue_password": "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "hashed": true}`)
	assert.Equal(t, "SUCCEEDED", res["command_status"], res)
	assert.FileExists(t, pwFile)
}
