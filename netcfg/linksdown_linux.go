package netcfg

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// LinksDown takes every link but loopback down, so nothing reaches
// this machine over the network any more (IPA's system.lockdown in the
// ramdisk). A link that stays up is named in the error; the others are
// taken down all the same.
func LinksDown() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	var errs []error
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		if err := netlink.LinkSetDown(l); err != nil {
			errs = append(errs, fmt.Errorf("link %s down: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}
