package netcfg

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// SourceAddr returns the local address the kernel would use to reach dst:
// the `src` of `ip route get dst`. The agent advertises it to Ironic as its
// callback address, because it is the address Ironic's side of that route
// can reach back.
func SourceAddr(ctx context.Context, dst netip.Addr) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("netcfg: route to %s: %w", dst, err)
	}
	for _, r := range routes {
		if r.Src == nil {
			continue
		}
		src, ok := netip.AddrFromSlice(r.Src)
		if !ok {
			continue
		}
		src = src.Unmap()
		if src.IsLinkLocalUnicast() {
			continue // IPA ignores link-local sources: Ironic cannot route back to them
		}
		return src, nil
	}
	return netip.Addr{}, fmt.Errorf("netcfg: no usable source address on the route to %s", dst)
}
