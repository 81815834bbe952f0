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
		// IPA's get_mac_addr: the permanent address when the driver
		// knows one, else the current one.
		mac := strings.ToLower(readTrim(filepath.Join(dir, "address")))
		if o.sysRoot == "/" {
			if perm := permanentMAC(name); perm != "" {
				mac = perm
			}
		}
		if mac == "" || mac == "00:00:00:00:00:00" {
			continue
		}
		ifc := Interface{Name: name, MACAddress: mac, HasCarrier: readTrim(filepath.Join(dir, "carrier")) == "1"}
		ifc.Vendor = strPtr(readTrim(filepath.Join(dir, "device", "vendor")))
		ifc.Product = strPtr(readTrim(filepath.Join(dir, "device", "device")))
		if ib, ok := mellanoxInfiniBand(ifc, o); ok {
			out = append(out, ib)
			continue
		}
		ifc.SpeedMbps = nicSpeed(o, name, dir)
		// IPA's get_interface_pci_address: the name the device link
		// points to, which is the PCI address for PCI NICs (virtio NICs
		// give their virtio device, "virtio0").
		if l, err := os.Readlink(filepath.Join(dir, "device")); err == nil {
			ifc.PCIAddress = strPtr(filepath.Base(l))
		}
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

// nicSpeed is IPA's speed_mbps, lshw's capacity (the fastest link mode
// the NIC supports) or else its current speed; null when neither is
// known (virtio NICs).
func nicSpeed(o *options, name, dir string) *int {
	if o.sysRoot == "/" {
		if ls, err := readLinkSettings(name); err == nil {
			if c := maxLinkSpeed(ls.Supported); c > 0 {
				n := int(c)
				return &n
			}
			if ls.SpeedMbps > 0 {
				n := int(ls.SpeedMbps)
				return &n
			}
			return nil
		}
	}
	if n, err := strconv.Atoi(readTrim(filepath.Join(dir, "speed"))); err == nil && n > 0 {
		return &n
	}
	return nil
}

// infinibandAddrLen is the length of an IPoIB hardware address's text.
const infinibandAddrLen = 59

// mlnxClientIDPrefix is IPA's Mellanox hardware manager's DHCP client-id
// prefix for IPoIB (RFC 4390).
const mlnxClientIDPrefix = "ff:00:00:00:00:00:02:00:00:02:c9:00:"

// mellanoxInfiniBand is IPA's MellanoxDeviceHardwareManager, which
// answers for Mellanox InfiniBand ports: the MAC made from the port
// GUID, the DHCP client-id, and nothing else (IPv6, LLDP, speed, PCI
// address and driver stay null).
func mellanoxInfiniBand(ifc Interface, o *options) (Interface, bool) {
	if len(ifc.MACAddress) != infinibandAddrLen || ifc.Vendor == nil || *ifc.Vendor != "0x15b3" {
		return ifc, false
	}
	a := ifc.MACAddress
	ib := Interface{Name: ifc.Name, MACAddress: a[36:len(a)-14] + a[51:], HasCarrier: ifc.HasCarrier,
		Vendor: ifc.Vendor, Product: ifc.Product, ClientID: strPtr(mlnxClientIDPrefix + a[36:])}
	if o.sysRoot == "/" {
		if ni, err := net.InterfaceByName(ifc.Name); err == nil {
			addrs, _ := ni.Addrs()
			for _, ad := range addrs {
				if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil {
					ib.IPv4Address = strPtr(ipn.IP.String())
					break
				}
			}
		}
	}
	return ib, true
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
