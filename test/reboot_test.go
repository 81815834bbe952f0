package test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestAgentRebootedMidClean: the machine reboots while cleaning runs.
// Ironic handed its token to the first boot, so the new boot's lookup gets
// "******" (as with IPA): goipa says so in its log, keeps trying, and
// Ironic fails the cleaning at its callback timeout with a last_error.
func TestAgentRebootedMidClean(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10), realironic.WithCallbackTimeout(20))
	mac := hostMAC(t)
	f, err := os.CreateTemp("/dev/shm", "goipa-reboot-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	os.Truncate(f.Name(), 3<<30)
	out, err := exec.Command("losetup", "--find", "--show", f.Name()).Output()
	if err != nil {
		t.Fatal(err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", loop).Run() })

	uuid := loopNode(t, ir, "goipa-reboot", mac, loop, "manage")
	first := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{map[string]any{"interface": "deploy", "step": "erase_devices"}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for countLines(first.Log(), "command started", "command=clean.execute_clean_step") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("cleaning never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The "reboot": the first boot dies mid-erase, a second one starts.
	syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL)
	second := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)
	n, err := ir.WaitState(ctx, uuid, "clean failed", 150*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("last_error: %s", n.Err())
	if !strings.Contains(strings.ToLower(n.Err()), "timeout") {
		t.Errorf("last_error does not say cleaning timed out: %q", n.Err())
	}
	if countLines(second.Log(), "handed the agent token out already") == 0 {
		t.Errorf("the rebooted agent does not say why Ironic refuses it:\n%s", tail(second.Log(), 20))
	}
}
