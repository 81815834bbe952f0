package netcfg

import (
	"context"
	"net/netip"
	"testing"
)

func TestSourceAddrLoopback(t *testing.T) {
	got, err := SourceAddr(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsLoopback() {
		t.Fatalf("source for 127.0.0.1 = %s, want a loopback address", got)
	}
}

func TestSourceAddrCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SourceAddr(ctx, netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatal("want an error from a cancelled context")
	}
}
