package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
)

// TestAPIBodyMemory starts a host agent and measures its peak RSS
// (VmHWM) while Ironic-shaped bodies arrive: one 127 MiB prepare_image
// body (a config drive inside the JSON) costs at most about twice its
// size, three of them at once cost no more than one, and a 256 MiB
// Content-Length is refused before it is read. The agent answers
// /v1/status after each.
func TestAPIBodyMemory(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "unshare", "losetup", "go")
	loop := loopDevice(t, 64<<20)
	agent := startAgent(t, "--ipa-standalone=1", "--goipa-devices="+loop)
	base := fmt.Sprintf("http://127.0.0.1:%d", agent.port)
	waitStatus(t, base) // the agent is up, so unshare has forked it
	pid := agentPID(t, agent)

	const mib = 1 << 20
	const bodySize = 127 * mib
	t.Logf("agent peak RSS after start: %d MiB", peakRSS(t, pid)/mib)

	// A 256 MiB Content-Length: 413 before the agent reads it.
	resetPeakRSS(t, pid)
	code := rawPost(t, base, 256*mib, 1*mib)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("256 MiB Content-Length: status %d, want 413", code)
	}
	if hwm := peakRSS(t, pid); hwm >= 64*mib {
		t.Errorf("refusing a 256 MiB body took the agent to %d MiB peak RSS, want < 64", hwm/mib)
	} else {
		t.Logf("256 MiB Content-Length refused at %d MiB peak RSS", hwm/mib)
	}
	waitStatus(t, base)

	// One 127 MiB body. Costs are counted from the RSS the agent had
	// before the first large body: Go keeps freed heap for a while, and
	// what it keeps is what the next body reuses.
	resetPeakRSS(t, pid)
	before := currentRSS(t, pid)
	if code := postConfigDrive(t, base, bodySize); code != http.StatusBadRequest {
		t.Errorf("127 MiB prepare_image body: status %d, want 400 (image_info refused after the body was decoded)", code)
	}
	one := peakRSS(t, pid) - before
	t.Logf("one 127 MiB body: peak RSS %d MiB over the %d MiB before it", one/mib, before/mib)
	if one > 2*bodySize+16*mib {
		t.Errorf("one 127 MiB body cost %d MiB of peak RSS, want at most about twice its size (%d MiB)", one/mib, (2*bodySize+16*mib)/mib)
	}
	waitStatus(t, base)

	// Three at once: admitted one after another, they cost what one does.
	resetPeakRSS(t, pid)
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = postConfigDrive(t, base, bodySize)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusBadRequest {
			t.Errorf("parallel body %d: status %d, want 400", i, c)
		}
	}
	three := peakRSS(t, pid) - before
	t.Logf("three parallel 127 MiB bodies: peak RSS %d MiB over the %d MiB before the first body", three/mib, before/mib)
	if three > 2*bodySize+16*mib {
		t.Errorf("three parallel 127 MiB bodies cost %d MiB of peak RSS, want at most about twice one body (%d MiB)", three/mib, (2*bodySize+16*mib)/mib)
	}
	waitStatus(t, base)
}

func peakRSS(t *testing.T, pid int) int64    { return statusKiB(t, pid, "VmHWM") << 10 }
func currentRSS(t *testing.T, pid int) int64 { return statusKiB(t, pid, "VmRSS") << 10 }

// resetPeakRSS sets VmHWM back to the current RSS (proc(5), clear_refs 5).
func resetPeakRSS(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
}

func waitStatus(t *testing.T, base string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(base + "/v1/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/status does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rawPost announces length bytes and sends at most send of them, then
// reads the answer: the agent must answer without waiting for the rest.
func rawPost(t *testing.T, base string, length, send int64) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /v1/commands/ HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", length)
	go io.Copy(conn, io.LimitReader(repeatByte('A'), send)) // may fail once the agent closes
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// postConfigDrive sends a prepare_image body of size bytes whose config
// drive fills it, streamed (the test holds none of it), with an
// image_info the agent refuses once it has decoded the body.
func postConfigDrive(t *testing.T, base string, size int) int {
	pre := `{"name": "standby.prepare_image", "params": {"image_info": {}, "configdrive": "`
	post := `"}}`
	body := io.MultiReader(strings.NewReader(pre), io.LimitReader(repeatByte('Q'), int64(size-len(pre)-len(post))), strings.NewReader(post))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/commands/", body)
	if err != nil {
		t.Error(err)
		return 0
	}
	req.ContentLength = int64(size)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
