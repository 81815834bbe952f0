// Package test holds goipa's tests against real parts: Debian's Ironic,
// loop devices, QEMU. Each test builds goipa and runs it as Ironic would
// meet it.
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

var (
	buildOnce sync.Once
	goipaBin  string
	buildErr  error
)

// goipa builds the agent binary once per test run.
func goipa(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := testenv.SharedTempDir("goipa-bin-")
		if err != nil {
			buildErr = err
			return
		}
		goipaBin = filepath.Join(dir, "goipa")
		out, err := exec.Command("go", "build", "-o", goipaBin, "../cmd/goipa").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return goipaBin
}

// loopDevice makes a loop device over a sparse file of size bytes and
// detaches it when the test ends.
func loopDevice(t *testing.T, size int64) string { return newLoop(t, size, false) }

// partscanLoop is loopDevice with partition scanning, as a real disk
// has: goipa makes the partitions' device nodes on it.
func partscanLoop(t *testing.T, size int64) string { return newLoop(t, size, true) }

func newLoop(t *testing.T, size int64, partscan bool) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	args := []string{"--find", "--show", f}
	if partscan {
		args = append(args, "--partscan")
	}
	out, err := exec.Command("losetup", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

// loopBacking returns the file behind a loop device.
func loopBacking(t *testing.T, dev string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// agentProcess is a goipa running on this host, in its own PID namespace
// so a stray reboot(2) could only end that namespace.
type agentProcess struct {
	cmd     *exec.Cmd
	logPath string
	port    int
}

// startAgent runs `goipa agent` in its own PID namespace (needs root).
func startAgent(t *testing.T, args ...string) *agentProcess {
	t.Helper()
	return spawnAgent(t, true, args...)
}

// startAgentPlain runs `goipa agent` as a plain child process: for tests
// that need no root and in which no command reaches the host.
func startAgentPlain(t *testing.T, args ...string) *agentProcess {
	t.Helper()
	return spawnAgent(t, false, args...)
}

func spawnAgent(t *testing.T, pidNamespace bool, args ...string) *agentProcess {
	t.Helper()
	port := realironic.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "goipa.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"agent", "--cmdline-file=/dev/null",
		"--ipa-listen-host=127.0.0.1", fmt.Sprintf("--ipa-listen-port=%d", port), "--ipa-debug=1"}, args...)
	cmd := exec.Command(goipa(t), full...)
	if pidNamespace {
		cmd = exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", goipa(t)}, full...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, logPath: logPath, port: port}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			t.Logf("---- goipa log ----\n%s", tail(p.Log(), 200))
		}
	})
	return p
}

func (p *agentProcess) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hostMAC returns a MAC that goipa reports on this host, as `goipa
// inventory` sees it: the node's port must carry one for lookup to match.
func hostMAC(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(goipa(t), "inventory", "--devices=/dev/null").Output()
	if err != nil {
		t.Fatalf("goipa inventory: %v", err)
	}
	var inv struct {
		Interfaces []struct {
			MAC string `json:"mac_address"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(out, &inv); err != nil {
		t.Fatalf("goipa inventory output: %v", err)
	}
	for _, i := range inv.Interfaces {
		if i.MAC != "" && i.MAC != "00:00:00:00:00:00" {
			return i.MAC
		}
	}
	t.Fatal("goipa reports no NIC with a MAC on this host")
	return ""
}

// countLines counts log lines that contain every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(sc.Text(), s)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestAgentCoreWithRealIronic runs goipa as a host process against Debian's
// Ironic 21.4 through manual cleaning and a deploy: lookup hands over the
// token, heartbeats are accepted, Ironic records goipa's HTTPS callback URL
// and certificate, calls get_clean_steps / get_deploy_steps and runs what
// goipa offers.
func TestAgentCoreWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 256<<20)

	uuid, err := ir.EnrollManualNode(ctx, "goipa-core", mac, map[string]any{
		"cpus": 2, "memory_mb": 2048, "local_gb": 1, "cpu_arch": "x86_64",
		"root_device": map[string]any{"name": loop},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}

	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)

	// Manual cleaning with erase_devices_metadata, then a full erase_devices
	// over a tenant's leftovers.
	if err := os.WriteFile(loopBacking(t, loop), bytes.Repeat([]byte("TENANT"), (256<<20)/6), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{
		map[string]any{"interface": "deploy", "step": "erase_devices_metadata"},
		map[string]any{"interface": "deploy", "step": "erase_devices"}}}); err != nil {
		t.Fatal(err)
	}
	var agentURL, verifyCA string
	record := func(n *realironic.Node) {
		if u, _ := n.DriverInternalInfo["agent_url"].(string); u != "" {
			agentURL = u
		}
		if c, _ := n.DriverInternalInfo["agent_verify_ca"].(string); c != "" {
			verifyCA = c
		}
	}
	n, err := ir.WaitState(ctx, uuid, "manageable", 150*time.Second, record)
	if err != nil {
		t.Fatalf("manual cleaning: %v", err)
	}
	t.Logf("cleaning ended in %s, last_error %q", n.ProvisionState, n.Err())

	want := fmt.Sprintf("https://127.0.0.1:%d", agent.port)
	if agentURL != want {
		t.Errorf("Ironic recorded agent_url %q, want %q (auto-TLS callback)", agentURL, want)
	}
	if verifyCA == "" {
		t.Error("Ironic recorded no agent_verify_ca: the certificate was not accepted")
	}
	log := agent.Log()
	for _, line := range [][]string{
		{"lookup succeeded", uuid},
		{"command finished", "command=clean.get_clean_steps", "status=SUCCEEDED"},
		{"command finished", "command=clean.execute_clean_step", "status=SUCCEEDED"},
		{"erase report", "device=" + loop, "discard", "zeros"}, // a loop device guarantees zeros after a discard
	} {
		if countLines(log, line...) == 0 {
			t.Errorf("goipa log has no line with %q", line)
		}
	}
	if wiped, _ := os.ReadFile(loopBacking(t, loop)); bytes.Contains(wiped, []byte("TENANT")) {
		t.Error("erase_devices left the tenant's bytes on the disk")
	}
	// Ironic wipes the cleaning token when cleaning ends, so a heartbeat
	// just after that is refused: fine, as long as goipa saw the refusal
	// and started over. Ironic's log is read first; goipa's own line for
	// the same heartbeat can come a moment later (a loaded machine), so
	// it is waited for, bounded.
	if strings.Contains(ir.Log(), "Invalid or missing agent token") {
		deadline := time.Now().Add(30 * time.Second)
		for countLines(agent.Log(), "Ironic refused the token") == 0 && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
		}
		if countLines(agent.Log(), "Ironic refused the token") == 0 {
			t.Error("Ironic refused goipa's token and goipa did not notice")
		}
	}

	// A deploy: goipa starts over once Ironic wipes the cleaning token,
	// looks the node up again, and Ironic runs the deploy steps.
	if err := ir.Provision(ctx, uuid, "provide", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	image := gptImage(t, 8<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "core.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256Hex(image)
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("core.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sum,
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	// Ironic builds the config drive ISO from this and sends it gzipped.
	configdrive := map[string]any{"meta_data": map[string]any{"uuid": uuid, "name": "goipa-configdrive-test"}, "user_data": "#cloud-config\n"}
	if err := ir.Provision(ctx, uuid, "active", map[string]any{"configdrive": configdrive}); err != nil {
		t.Fatal(err)
	}
	if _, err = ir.WaitState(ctx, uuid, "active", 240*time.Second, nil); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	log = agent.Log()
	for _, line := range [][]string{
		{"command finished", "command=deploy.get_deploy_steps", "status=SUCCEEDED"},
		{"command finished", "command=deploy.execute_deploy_step", "status=SUCCEEDED"},
		{"command finished", "command=standby.get_partition_uuids", "status=SUCCEEDED"},
		{"command=standby.power_off"},
	} {
		if countLines(log, line...) == 0 {
			t.Errorf("goipa log has no line with %q", line)
		}
	}
	if countLines(log, "lookup succeeded", uuid) < 2 {
		t.Error("goipa did not look the node up again for the deploy")
	}
	dev, err := os.ReadFile(loop)
	if err != nil {
		t.Fatal(err)
	}
	// The image, except its GPT, which the config drive's new entry and
	// the backup moved to the disk's end have changed.
	if !bytes.Equal(dev[34*512:len(image)], image[34*512:]) {
		t.Error("the loop device does not hold the image")
	}
	checkConfigDrive(t, loop, "goipa-configdrive-test")

	// Undeploy with automated cleaning: goipa looks the node up again and
	// Ironic runs erase_devices_metadata.
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "replace", "path": "/automated_clean", "value": true}); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "available", 240*time.Second, nil); err != nil {
		t.Fatalf("undeploy and cleaning: %v", err)
	}
	if countLines(agent.Log(), "lookup succeeded", uuid) < 3 {
		t.Error("goipa did not look the node up for the cleaning after undeploy")
	}
	head := make([]byte, 1<<20)
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Error("cleaning after undeploy left the partition table on the disk")
	}
}

// gptImage makes a whole-disk image with a GPT and one partition full
// of a pattern.
func gptImage(t *testing.T, size int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.raw")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sgdisk", "-n", "1:2048:0", "-c", "1:root", path).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2048 * 512; i < size-64*512; i++ {
		img[i] = byte(i*7 + i>>12)
	}
	return img
}

// checkConfigDrive finds the config-2 partition in the GPT of loop (a
// device or a disk file) and checks it holds Ironic's ISO with our metadata.
func checkConfigDrive(t *testing.T, loop string, marker string) {
	t.Helper()
	out, err := exec.Command("sgdisk", "--print", loop).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config-2") {
		t.Fatalf("no config-2 partition on the disk: %v\n%s", err, out)
	}
	info, _ := exec.Command("sgdisk", "--info=2", loop).CombinedOutput()
	var first int64
	for _, l := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(l, "First sector:") {
			fmt.Sscan(strings.Fields(l)[2], &first)
		}
	}
	if first == 0 {
		t.Fatalf("cannot read the config drive's first sector:\n%s", info)
	}
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	part := make([]byte, 64<<20)
	n, _ := f.ReadAt(part, first*512)
	part = part[:n]
	if len(part) < 32768+72 || string(part[32769:32774]) != "CD001" || !strings.HasPrefix(string(part[32768+40:32768+72]), "config-2") {
		t.Fatalf("partition 2 does not hold an ISO9660 labelled config-2")
	}
	if !bytes.Contains(part, []byte(marker)) {
		t.Errorf("the config drive does not carry the node's meta_data (%q)", marker)
	}
	if v, _ := exec.Command("sgdisk", "--verify", loop).CombinedOutput(); !strings.Contains(string(v), "No problems found") {
		t.Errorf("sgdisk finds problems in the GPT after the config drive:\n%s", v)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// loopNode enrolls a node whose install disk is loop (a root device hint
// naming it) and a port with mac, and takes it through the provision
// targets (e.g. "manage", "provide") until it reaches the last one's state.
func loopNode(t *testing.T, ir *realironic.Ironic, name, mac, loop string, targets ...string) string {
	t.Helper()
	ctx := context.Background()
	uuid, err := ir.EnrollManualNode(ctx, name, mac, map[string]any{"root_device": map[string]any{"name": loop}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{"manage": "manageable", "provide": "available"}
	for _, target := range targets {
		if err := ir.Provision(ctx, uuid, target, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ir.WaitState(ctx, uuid, states[target], 60*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	return uuid
}
