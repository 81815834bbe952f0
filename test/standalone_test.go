package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestStandaloneServesAtOnce is the README's first try: the API answers
// IPA-shaped JSON as soon as the process is up, with no Ironic anywhere.
func TestStandaloneServesAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	agent := startAgentPlain(t, "--ipa-standalone=1")
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/status", agent.port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			var st map[string]any
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("status is not JSON: %v", err)
			}
			if st["version"] != "9.4.2" || st["started_at"] == nil {
				t.Fatalf("status %v is not IPA-shaped", st)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API did not answer within 20 s: %v\n%s", err, agent.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
