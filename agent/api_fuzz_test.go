package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzTokens accepts one token on POST and anything on GET.
type fuzzTokens struct{}

func (fuzzTokens) checkToken(token string, present, isGet bool) bool {
	return isGet || token == "fuzz-token-0123456789abcdef0123456789"
}

// FuzzAPIRequest sends any method, path with query, and body to the API
// (with one harmless extension, so no command can touch the machine):
// every answer is JSON, every refusal carries IPA's faultstring, and no
// handler panics (a panic becomes a 500 that fails the target).
func FuzzAPIRequest(f *testing.F) {
	f.Add("POST", "/v1/commands/?agent_token=fuzz-token-0123456789abcdef0123456789&wait=true", []byte(`{"name": "fuzz.echo", "params": {"a": 1}}`))
	f.Add("POST", "/v1/commands?wait=TRUE&agent_token=", []byte(`{"name": "fuzz.echo", "params": {}}`))
	f.Add("GET", "/v1/commands/abc?wait=true&agent_token=x&agent_token=y", []byte(nil))
	f.Add("GET", "/v1/status?%zz", []byte(nil))
	f.Add("GET", "/commands/", []byte(nil))
	f.Add("DELETE", "/v1/commands/", []byte(`{}`))
	f.Add("GET", "/", []byte(nil))
	f.Add("GET", "/v1/", []byte(nil))
	f.Add("POST", "/v1/commands/?agent_token=fuzz-token-0123456789abcdef0123456789", []byte(`{"name": "fuzz.echo", "params": {}} x`))
	log := quietLogger()
	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		req, err := http.NewRequest(method, "http://agent"+target, bytes.NewReader(body))
		if err != nil || req.URL.Path == "" {
			return
		}
		cmds := NewManager(log, newMetrics(), nil)
		cmds.Register(Commands{Ext: "fuzz", Cmds: map[string]Command{
			"echo": {Run: func(_ context.Context, c *Call) (any, error) { return c.Params, nil }},
		}})
		s := newAPIServer(log, cmds, fuzzTokens{}, func() map[string]any { return map[string]any{"ok": true} }, newMetrics())
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if req.URL.Path == "/metrics" || rec.Code/100 == 3 {
			return // Prometheus' text format; ServeMux's redirect to the clean path
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body.Bytes())
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer is not a JSON object: %q", method, target, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			if _, ok := out["faultstring"].(string); !ok {
				t.Fatalf("%s %q: %d without a faultstring: %v", method, target, rec.Code, out)
			}
		}
	})
}
