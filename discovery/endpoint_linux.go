package discovery

import (
	"context"
	"net/netip"
	"time"

	"github.com/goipa/goipa/netcfg"
)

// routable reports whether this machine has a route to a.
func routable(a netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := netcfg.SourceAddr(ctx, a)
	return err == nil
}
