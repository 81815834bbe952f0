package inventory

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func machineArch() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Machine[:])
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NormalizeBootIF turns BOOTIF's "01-aa-bb-..." (or "aa:bb:...") into a
// lower-case colon MAC.
func NormalizeBootIF(bootif string) string {
	s := strings.ToLower(strings.TrimSpace(bootif))
	if strings.Count(s, "-") == 6 && strings.HasPrefix(s, "01-") {
		s = s[3:]
	}
	return strings.ReplaceAll(s, "-", ":")
}

// Interfaces lists the NICs IPA lists: entries of /sys/class/net backed
// by a device (VLANs and bonds too), the PXE NIC first.
func Interfaces(ctx context.Context, opts ...Option) ([]Interface, error) {
	return interfaces(ctx, newOptions(opts))
}

func interfaces(ctx context.Context, o *options) ([]Interface, error) {
	base := o.path("sys/class/net")
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	pxe := NormalizeBootIF(o.bootif)
	var out []Interface
	for _, e := range entries {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		name := e.Name()
		dir := filepath.Join(base, name)
		_, hasDevice := os.Stat(filepath.Join(dir, "device"))
		isVLAN := strings.Contains(name, ".")
		_, isBond := os.Stat(filepath.Join(dir, "bonding"))
		if hasDevice != nil && !isVLAN && isBond != nil {
			continue // virtual (lo, bridges, tunnels): IPA skips them
		}
		if _, err := os.Stat(filepath.Join(dir, "wireless")); err == nil {
			continue
		}
		mac := strings.ToLower(readTrim(filepath.Join(dir, "address")))
		if mac == "" || mac == "00:00:00:00:00:00" {
			continue
		}
		ifc := Interface{Name: name, MACAddress: mac, HasCarrier: readTrim(filepath.Join(dir, "carrier")) == "1"}
		ifc.Vendor = strPtr(readTrim(filepath.Join(dir, "device", "vendor")))
		ifc.Product = strPtr(readTrim(filepath.Join(dir, "device", "device")))
		if n, err := strconv.Atoi(readTrim(filepath.Join(dir, "speed"))); err == nil && n > 0 {
			ifc.SpeedMbps = &n
		}
		ifc.PCIAddress = strPtr(pciAddress(filepath.Join(dir, "device")))
		if l, err := os.Readlink(filepath.Join(dir, "device", "driver")); err == nil {
			ifc.Driver = strPtr(filepath.Base(l))
		}
		if o.sysRoot == "/" {
			if ni, err := net.InterfaceByName(name); err == nil {
				addrs, _ := ni.Addrs()
				for _, a := range addrs {
					ipn, ok := a.(*net.IPNet)
					if !ok {
						continue
					}
					if ipn.IP.To4() != nil && ifc.IPv4Address == nil {
						ifc.IPv4Address = strPtr(ipn.IP.String())
					} else if ipn.IP.To4() == nil && ifc.IPv6Address == nil {
						s := ipn.IP.String()
						if ipn.IP.IsLinkLocalUnicast() {
							s += "%" + name
						}
						ifc.IPv6Address = strPtr(s)
					}
				}
			}
		}
		if o.lldp != nil {
			ifc.LLDP = o.lldp(name)
		}
		if o.sysRoot == "/" {
			ifc.FirmwareVersion = nicFirmware(name)
		}
		ifc.PXEEnabled = pxe != "" && mac == pxe
		out = append(out, ifc)
	}
	// The boot NIC first, then by name: lookup tries MACs in this order.
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].PXEEnabled != out[j].PXEEnabled {
			return out[i].PXEEnabled
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// MACs returns the MAC addresses for lookup, the boot NIC first.
func MACs(ctx context.Context, opts ...Option) ([]string, error) {
	ifs, err := Interfaces(ctx, opts...)
	var macs []string
	seen := map[string]bool{}
	for _, i := range ifs {
		if !seen[i.MACAddress] {
			seen[i.MACAddress] = true
			macs = append(macs, i.MACAddress)
		}
	}
	return macs, err
}

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// pciAddress walks up from a device (virtio NICs sit below their PCI
// function) to the PCI address.
func pciAddress(dev string) string {
	p, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return ""
	}
	for ; p != "/" && p != "."; p = filepath.Dir(p) {
		if pciAddr.MatchString(filepath.Base(p)) {
			return filepath.Base(p)
		}
	}
	return ""
}
