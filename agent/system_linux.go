package agent

import (
	"log/slog"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func syncFilesystems() { unix.Sync() }

// systemPower really powers off or reboots the machine: only ever called
// under `goipa init` or with goipa-power=system.
func systemPower(act powerAction) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if act == powerReboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	return unix.Reboot(cmd)
}

// linksDown takes every non-loopback link down after a lockdown in the
// ramdisk, so nothing reaches the agent any more.
func linksDown(log *slog.Logger) {
	links, err := netlink.LinkList()
	if err != nil {
		log.Error("lockdown: listing links", "error", err)
		return
	}
	for _, l := range links {
		if l.Attrs().Flags&unix.IFF_LOOPBACK != 0 {
			continue
		}
		if err := netlink.LinkSetDown(l); err != nil {
			log.Error("lockdown: link down", "link", l.Attrs().Name, "error", err)
		}
	}
}
