package agent

import (
	"log/slog"

	"github.com/goipa/goipa/netcfg"
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

// linksDown takes every link but loopback down after a lockdown in the
// ramdisk (netcfg.LinksDown), so nothing reaches the agent any more.
func linksDown(log *slog.Logger) {
	if err := netcfg.LinksDown(); err != nil {
		log.Error("lockdown: links down", "error", err)
	}
}
