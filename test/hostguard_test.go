package test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
)

// deviceSum is the SHA-256 of a whole block device.
func deviceSum(t *testing.T, dev string) string {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// statusAnswers waits (bounded) until the agent's /v1/status answers 200.
func statusAnswers(t *testing.T, agent *agentProcess, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", agent.port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/status does not answer: %v\n%s", err, tail(agent.Log(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHostAgentWritesOnlyGoipaDevices runs `goipa agent` on this host
// with goipa-devices naming loopA only and asks it to write elsewhere:
// inject_files with partition set to loopB (its partition, the whole
// device) or the host's /dev/vda is refused; install_bootloader picks
// loopA, the only disk it may use. loopB's checksum does not change and
// /v1/status answers after every case.
func TestHostAgentWritesOnlyGoipaDevices(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "unshare", "losetup", "sgdisk")
	loopA := partscanLoop(t, 5<<30) // above IPA's 4 GiB install disk minimum
	loopB := partscanLoop(t, 64<<20)
	run(t, "sgdisk", "-n", "1:2048:0", loopB)
	run(t, "dd", "if=/dev/urandom", "of="+loopB, "bs=1M", "seek=2", "count=8", "conv=notrunc", "status=none")
	before := deviceSum(t, loopB)
	agent := startAgent(t, "--ipa-standalone=1", "--goipa-devices="+loopA)
	statusAnswers(t, agent, 30*time.Second)

	content := base64.StdEncoding.EncodeToString([]byte("written by a hostile request"))
	for _, part := range []string{loopB + "p1", loopB, "/dev/vda", "/dev/vda1"} {
		t.Run("inject_files partition "+part, func(t *testing.T) {
			res := postCommand(t, agent.port, "deploy.execute_deploy_step", map[string]any{
				"node": map[string]any{"uuid": "n1"}, "ports": []any{},
				"step": map[string]any{"interface": "deploy", "step": "inject_files", "args": map[string]any{
					"files": []any{map[string]any{"path": "/etc/hostile", "partition": part, "content": content}}}}})
			if res["command_status"] != "FAILED" {
				t.Fatalf("inject_files into %s: %v", part, res)
			}
			b, _ := json.Marshal(res["command_error"])
			if !strings.Contains(string(b), "refusing to write "+part) || !strings.Contains(string(b), "DeviceNotFound") {
				t.Errorf("inject_files into %s: error %s, want DeviceNotFound refusing to write it", part, b)
			}
			statusAnswers(t, agent, 5*time.Second)
		})
	}
	t.Run("install_bootloader", func(t *testing.T) {
		res := postCommand(t, agent.port, "image.install_bootloader", map[string]any{"root_uuid": "0x1234abcd", "target_boot_mode": "bios"})
		b, _ := json.Marshal(res)
		if strings.Contains(string(b), loopB) || strings.Contains(string(b), "/dev/vda") {
			t.Errorf("install_bootloader looked outside goipa-devices: %s", b)
		}
		if res["command_status"] != "SUCCEEDED" || countLines(agent.Log(), "install_bootloader", "device="+loopA) == 0 {
			t.Errorf("install_bootloader: %s; want it done on %s\n%s", b, loopA, tail(agent.Log(), 20))
		}
		statusAnswers(t, agent, 5*time.Second)
	})
	if got := deviceSum(t, loopB); got != before {
		t.Errorf("%s changed: sha256 %s, was %s", loopB, got, before)
	}
}
