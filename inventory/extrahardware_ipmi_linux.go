package inventory

import (
	"context"
	"encoding/binary"
	"strconv"
)

// The hardware package's ipmi.detect: the BMC's channel as
// ("system", "ipmi", "channel") and `ipmitool lan print`'s lines as
// ("ipmi", "lan", <label lower-cased, words joined by "-">). goipa asks
// the same LAN parameters over the kernel's IPMI device (the requests
// ipmi_linux.go sends) and words the answers as ipmitool prints them.

// More LAN configuration parameters (IPMI 2.0 table 23-4).
const (
	lanParamIPSource     = 4
	lanParamSubnetMask   = 6
	lanParamGatewayIP    = 12
	lanParamGatewayMAC   = 13
	lanParamBackupGWIP   = 14
	lanParamBackupGWMAC  = 15
	lanParamVLANID       = 20
	lanParamVLANPriority = 21
)

// ipmiIPSources are ipmitool's words for the IP Address Source parameter.
var ipmiIPSources = map[byte]string{0: "Unspecified", 1: "Static Address", 2: "DHCP Address", 3: "BIOS Assigned Address"}

// ipmiExtraFacts opens the IPMI device, when there is one, and adds its
// facts. No device, no facts: hardware-detect's "No IPMI device found".
func ipmiExtraFacts(ctx context.Context, f *facts, o *options) {
	dev := findIPMIDevice(o)
	if dev == "" {
		return
	}
	d, err := openIPMI(dev, ipmiTimeout)
	if err != nil {
		o.log.Warn("extra-hardware: IPMI", "device", dev, "error", err)
		return
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(ctx, bmcScanTimeout)
	defer cancel()
	ipmiLANFacts(ctx, f, d)
}

// ipmiLANFacts reads the first LAN channel, the one `ipmitool lan print`
// prints without a channel argument.
func ipmiLANFacts(ctx context.Context, f *facts, c ipmiConn) {
	for ch := byte(ipmiFirstChannel); ch <= ipmiLastChannel && ctx.Err() == nil; ch++ {
		if !isLANChannel(ctx, c, ch) {
			continue
		}
		// A channel that answers no IP parameter is no LAN channel to
		// ipmitool either.
		ipData, err := lanParam(ctx, c, ch, lanParamIPAddress, 0)
		if err != nil {
			continue
		}
		f.add("system", "ipmi", "channel", strconv.Itoa(int(ch)))
		param := func(p byte, n int) []byte {
			d, err := lanParam(ctx, c, ch, p, 0)
			if err != nil {
				return nil
			}
			v, err := parseLANParam(d, n)
			if err != nil {
				return nil
			}
			return v
		}
		if v := param(lanParamIPSource, 1); v != nil {
			s, ok := ipmiIPSources[v[0]&0x0f]
			if !ok {
				s = "Other"
			}
			f.add("ipmi", "lan", "ip-address-source", s)
		}
		if ip, err := parseIPv4Param(ipData); err == nil {
			f.add("ipmi", "lan", "ip-address", ip)
		}
		ipv4 := func(key string, p byte) {
			if d, err := lanParam(ctx, c, ch, p, 0); err == nil {
				if s, err := parseIPv4Param(d); err == nil {
					f.add("ipmi", "lan", key, s)
				}
			}
		}
		mac := func(key string, p byte) {
			if d, err := lanParam(ctx, c, ch, p, 0); err == nil {
				if s, err := parseMACParam(d); err == nil {
					f.add("ipmi", "lan", key, s)
				}
			}
		}
		ipv4("subnet-mask", lanParamSubnetMask)
		mac("mac-address", lanParamMACAddress)
		ipv4("default-gateway-ip", lanParamGatewayIP)
		mac("default-gateway-mac", lanParamGatewayMAC)
		ipv4("backup-gateway-ip", lanParamBackupGWIP)
		mac("backup-gateway-mac", lanParamBackupGWMAC)
		if v := param(lanParamVLANID, 2); v != nil {
			id := binary.LittleEndian.Uint16(v)
			s := "Disabled"
			if id&0x8000 != 0 {
				s = strconv.Itoa(int(id & 0x0fff))
			}
			f.add("ipmi", "lan", "802.1q-vlan-id", s)
		}
		if v := param(lanParamVLANPriority, 1); v != nil {
			f.add("ipmi", "lan", "802.1q-vlan-priority", strconv.Itoa(int(v[0]&0x07)))
		}
		return
	}
}
