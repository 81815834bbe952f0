package firmware

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind says which interface updates a device.
type Kind string

// The two kinds of device goipa updates.
const (
	KindNVMe    Kind = "nvme"
	KindDevlink Kind = "devlink"
)

// Device is a resolved update target.
type Device struct {
	Kind Kind
	// Name is the NVMe controller (nvme0) or the devlink handle
	// (pci/0000:3b:00.0, netdevsim/netdevsim1).
	Name string
	// Bus and Dev are the devlink handle's halves.
	Bus, Dev string
}

func (d Device) String() string { return d.Name }

// ErrUnknownTarget says no device matches a target.
var ErrUnknownTarget = errors.New("no device matches the target")

var (
	nvmeCtrlName = regexp.MustCompile(`^nvme[0-9]+$`)
	pciAddress   = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
)

// Resolve finds the device a target names, reading sysfs under root
// ("/" on a machine): an NVMe controller name (nvme0), an NVMe serial
// number, a PCI address (an NVMe controller's, else the devlink device
// pci/<address>), a network interface name or its MAC address (the
// devlink device of the interface's parent device).
func Resolve(root, target string) (Device, error) {
	sys := filepath.Join(root, "sys")
	t := strings.TrimSpace(target)
	if t == "" || strings.ContainsAny(t, "/\x00") || t == "." || t == ".." {
		return Device{}, fmt.Errorf("%w: %q", ErrUnknownTarget, target)
	}
	if nvmeCtrlName.MatchString(t) {
		if _, err := os.Stat(filepath.Join(sys, "class/nvme", t)); err == nil {
			return Device{Kind: KindNVMe, Name: t}, nil
		}
		return Device{}, fmt.Errorf("%w: %s (no /sys/class/nvme/%s)", ErrUnknownTarget, t, t)
	}
	if pciAddress.MatchString(t) {
		addr := strings.ToLower(t)
		dir := filepath.Join(sys, "bus/pci/devices", addr)
		if _, err := os.Stat(dir); err != nil {
			return Device{}, fmt.Errorf("%w: %s (no PCI device at that address)", ErrUnknownTarget, t)
		}
		if ents, err := os.ReadDir(filepath.Join(dir, "nvme")); err == nil && len(ents) > 0 {
			return Device{Kind: KindNVMe, Name: ents[0].Name()}, nil
		}
		return devlinkDevice("pci", addr), nil
	}
	if mac, err := net.ParseMAC(t); err == nil {
		ifaces, _ := os.ReadDir(filepath.Join(sys, "class/net"))
		for _, e := range ifaces {
			b, err := os.ReadFile(filepath.Join(sys, "class/net", e.Name(), "address"))
			if err == nil && strings.EqualFold(strings.TrimSpace(string(b)), mac.String()) {
				return netDevice(sys, e.Name(), t)
			}
		}
		return Device{}, fmt.Errorf("%w: %s (no interface has that MAC address)", ErrUnknownTarget, t)
	}
	if _, err := os.Lstat(filepath.Join(sys, "class/net", t)); err == nil {
		return netDevice(sys, t, t)
	}
	ctrls, _ := os.ReadDir(filepath.Join(sys, "class/nvme"))
	for _, e := range ctrls {
		b, err := os.ReadFile(filepath.Join(sys, "class/nvme", e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(b)) == t {
			return Device{Kind: KindNVMe, Name: e.Name()}, nil
		}
	}
	return Device{}, fmt.Errorf("%w: %q is no NVMe controller, NVMe serial, PCI address, interface name or MAC address here", ErrUnknownTarget, target)
}

// netDevice is the devlink device of an interface's parent device: the
// bus is the parent's subsystem (pci, netdevsim), the name its own.
func netDevice(sys, iface, target string) (Device, error) {
	dev, err := filepath.EvalSymlinks(filepath.Join(sys, "class/net", iface, "device"))
	if err != nil {
		return Device{}, fmt.Errorf("%w: %s is a virtual interface without a device to flash", ErrUnknownTarget, target)
	}
	bus, err := filepath.EvalSymlinks(filepath.Join(dev, "subsystem"))
	if err != nil {
		return Device{}, fmt.Errorf("%w: %s: the bus of %s: %v", ErrUnknownTarget, target, dev, err)
	}
	return devlinkDevice(filepath.Base(bus), filepath.Base(dev)), nil
}

func devlinkDevice(bus, dev string) Device {
	return Device{Kind: KindDevlink, Name: bus + "/" + dev, Bus: bus, Dev: dev}
}
