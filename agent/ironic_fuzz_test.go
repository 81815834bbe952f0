package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fuzzIronic serves whatever answer the fuzz function sets.
type fuzzIronic struct {
	mu     sync.Mutex
	status int
	body   []byte
}

func (f *fuzzIronic) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	status, body := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// FuzzIronicAnswers: any status and body Ironic answers to version
// discovery, lookup and heartbeat is decoded without a panic; an accepted
// lookup names a node and leaves the agent with a usable heartbeat
// interval; a refused heartbeat carries its faultstring, and only
// Ironic's token refusal starts the agent over.
func FuzzIronicAnswers(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"default_version": {"version": "1.68"}}`},
		{200, `{"node": {"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "properties": {}}, "config": {"heartbeat_timeout": 300, "agent_token": "0123456789abcdef0123456789abcdef01", "agent_md5_checksum_enable": false}}`},
		{200, `{"node": {"uuid": "u"}, "config": {"heartbeat_timeout": 1e300, "agent_token": "******", "agent_token_required": true}}`},
		{200, `{"node": {"uuid": "u"}, "config": {"heartbeat_timeout": 1e-300}}`},
		{200, `{"node": {"uuid": 5}, "config": []}`},
		{400, `{"error_message": "{\"faultstring\": \"Invalid or missing agent token received.\", \"faultcode\": \"Client\"}"}`},
		{404, `{"error_message": {"faultstring": "Node not found"}}`},
		{409, `{"faultstring": "Node is locked"}`},
		{500, `<html>oops</html>`},
		{202, ``},
	} {
		f.Add(s.status, []byte(s.body))
	}
	srv := &fuzzIronic{}
	ts := httptest.NewServer(srv)
	f.Cleanup(ts.Close)
	cfg, err := ParseConfig("ipa-api-url="+ts.URL, nil)
	if err != nil {
		f.Fatal(err)
	}
	client, err := newIronicClient(cfg)
	if err != nil {
		f.Fatal(err)
	}
	v, _ := parseMicroversion("1.68")
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 200 || status > 599 {
			return // net/http refuses to send these
		}
		srv.mu.Lock()
		srv.status, srv.body = status, body
		srv.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		client.discoverVersion(ctx, ts.URL)

		res, err := client.lookup(ctx, ts.URL, v, []string{"52:54:00:12:34:56"}, "")
		if err == nil {
			if res.NodeUUID() == "" {
				t.Fatalf("lookup accepted an answer without a node uuid: %q", body)
			}
			a := newTestAgent(t, "ipa-api-url="+ts.URL)
			a.applyLookup(res)
			if hb := a.heartbeatTimeout(); hb <= 0 {
				t.Fatalf("lookup answer %q left a heartbeat timeout of %v", body, hb)
			}
		}

		err = client.heartbeat(ctx, ts.URL, v, "u", heartbeatBody(v, "https://agent:9999", "tok", IPAVersion, ""))
		var ie *IronicError
		switch {
		case err == nil:
			if status != 200 && status != 202 && status != 204 {
				t.Fatalf("heartbeat accepted status %d", status)
			}
		case errors.As(err, &ie):
			if ie.Status != status {
				t.Fatalf("heartbeat error has status %d, Ironic answered %d", ie.Status, status)
			}
			if tokenWiped(ie) && status != 400 {
				t.Fatalf("a %d answer starts the agent over", status)
			}
		default:
			t.Fatalf("heartbeat: %v", err)
		}
	})
}
