package lldpswitch

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/netcfg"
)

// TestSpeakReachesTheFarEndOfALink sends from one end of a veth pair in a
// namespace of the test's own and captures on the other end, as the
// agent's NIC would hear it; the sending end sees its own frames as
// outgoing.
func TestSpeakReachesTheFarEndOfALink(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ip")
	ns := fmt.Sprintf("goipa-lldp-%d", os.Getpid())
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
	sh("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sh("-n", ns, "link", "add", "sw0", "type", "veth", "peer", "name", "host0")
	sh("-n", ns, "link", "set", "sw0", "up")
	sh("-n", ns, "link", "set", "host0", "up")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x07}
	port := Port{ChassisMAC: chassis, PortID: "swp7", SystemName: "tor-a", VLAN: 101}
	type result struct {
		frames []Captured
		err    error
	}
	far, near := make(chan result), make(chan result)
	go func() { f, err := Capture(ctx, ns, "host0", 2); far <- result{f, err} }()
	go func() { f, err := Capture(ctx, ns, "sw0", 2); near <- result{f, err} }()
	time.Sleep(200 * time.Millisecond) // both sockets bound before the first frame
	sp, err := Speak(ctx, ns, "sw0", port, src, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	got, sent := <-far, <-near
	if got.err != nil || sent.err != nil {
		t.Fatalf("capture: %v / %v", got.err, sent.err)
	}
	if len(got.frames) != 2 || len(sent.frames) != 2 {
		t.Fatalf("captured %d frames at the far end and %d at the sender, want 2 each (sent %d, last error %v)",
			len(got.frames), len(sent.frames), sp.Sent(), sp.Err())
	}
	for _, c := range got.frames {
		if c.Outgoing || c.Src.String() != src.String() {
			t.Errorf("far end saw outgoing=%v from %s, want an incoming frame from %s", c.Outgoing, c.Src, src)
		}
		tlvs, err := netcfg.ParseLLDP(c.PDU)
		if err != nil {
			t.Fatal(err)
		}
		if n := netcfg.Summarize(tlvs); n.SystemName != "tor-a" || n.PortID != "swp7" || len(n.VLANs) != 1 || n.VLANs[0] != 101 {
			t.Errorf("far end heard %+v", n)
		}
	}
	for _, c := range sent.frames {
		if !c.Outgoing {
			t.Error("the sender's own frame was not marked outgoing")
		}
	}
}
