package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/u-root/u-root/pkg/ipmi"
)

// The BMC is asked through the kernel's IPMI message handler
// (ipmi_devintf's /dev/ipmi0, by u-root's pkg/ipmi), with the requests
// ipmitool's `mc info`, `lan print` and `lan6 print` send, so that no
// ipmitool is needed in the ramdisk. IPA's rules over ipmitool's output
// are reproduced on the raw answers. The answers are read here, not by
// u-root's GetDeviceID and GetLanConfig: GetDeviceID slices an empty
// answer out of range (a panic) and fails a whole answer over a short
// auxiliary revision, and GetLanConfig always asks for set 0, where the
// IPv6 address tables need their set selectors.

// IPMI network functions and commands (IPMI 2.0 tables G-1 and 23-*).
const (
	netfnApp       = 0x06
	netfnTransport = 0x0c

	cmdGetDeviceID    = 0x01
	cmdGetChannelInfo = 0x42
	cmdGetLANConfig   = 0x02
)

// LAN configuration parameters (IPMI 2.0 table 23-4).
const (
	lanParamIPAddress   = 3
	lanParamMACAddress  = 5
	lanParamIP6Enables  = 51 // 0 IPv4 only, 1 IPv6 only, 2 both
	lanParamIP6Status   = 55 // static address count, dynamic address count
	lanParamIP6Static   = 56
	lanParamIP6Dynamic  = 59
	channelMediumLAN    = 0x04 // 802.3
	channelMediumLANOth = 0x06
)

// IPv6 address sources and states (parameters 56 and 59).
const (
	ip6SourceSLAAC  = 1
	ip6SourceDHCPv6 = 2
	ip6StatusActive = 0
)

// ipmiCompletionError is a BMC's non-zero completion code: the command or
// the parameter is not supported, the channel does not exist.
type ipmiCompletionError struct {
	NetFn, Cmd, Code byte
}

func (e *ipmiCompletionError) Error() string {
	return fmt.Sprintf("ipmi: netfn 0x%02x cmd 0x%02x: completion code 0x%02x", e.NetFn, e.Cmd, e.Code)
}

// ipmiConn sends one request to the BMC and returns the response data
// after the completion code.
type ipmiConn interface {
	send(ctx context.Context, netfn, cmd byte, data []byte) ([]byte, error)
}

// BMC addresses as IPA reports them when an IPMI device exists but
// nothing better is found.
const (
	noBMCAddress   = "0.0.0.0"
	noBMCV6Address = "::/0"
)

// ipmiChannels are the channels IPA asks: of 0-15 only 1-11 can be LAN.
const ipmiFirstChannel, ipmiLastChannel = 1, 11

// parseDeviceID reads Get Device ID's answer (IPMI 2.0 20.1). Versions
// are printed as ipmitool's `mc info` prints them.
func parseDeviceID(d []byte) (*BMC, error) {
	if len(d) < 11 {
		return nil, fmt.Errorf("ipmi: Get Device ID answered %d bytes, want at least 11", len(d))
	}
	b := &BMC{
		DeviceID:        int(d[0]),
		DeviceRevision:  int(d[1] & 0x0f),
		FirmwareVersion: fmt.Sprintf("%d.%02x", d[2]&0x7f, d[3]),
		IPMIVersion:     fmt.Sprintf("%x.%x", d[4]&0x0f, d[4]>>4),
		ManufacturerID:  int(d[6]) | int(d[7])<<8 | int(d[8]&0x0f)<<16,
		ProductID:       int(d[9]) | int(d[10])<<8,
	}
	if len(d) >= 15 {
		b.AuxFirmwareRevision = fmt.Sprintf("%02x%02x%02x%02x", d[11], d[12], d[13], d[14])
	}
	return b, nil
}

// parseChannelMedium reads Get Channel Info's medium type (IPMI 2.0 22.24).
func parseChannelMedium(d []byte) (byte, error) {
	if len(d) < 2 {
		return 0, fmt.Errorf("ipmi: Get Channel Info answered %d bytes, want at least 2", len(d))
	}
	return d[1] & 0x7f, nil
}

// lanConfigRequest asks for one parameter of one channel (IPMI 2.0 23.2).
func lanConfigRequest(channel, param, set byte) []byte {
	return []byte{channel & 0x0f, param, set, 0}
}

// parseLANParam strips the parameter revision and checks the length.
func parseLANParam(d []byte, n int) ([]byte, error) {
	if len(d) < 1+n {
		return nil, fmt.Errorf("ipmi: LAN parameter answered %d bytes, want %d", len(d), 1+n)
	}
	return d[1 : 1+n], nil
}

func parseIPv4Param(d []byte) (string, error) {
	p, err := parseLANParam(d, 4)
	if err != nil {
		return "", err
	}
	return netip.AddrFrom4([4]byte(p)).String(), nil
}

func parseMACParam(d []byte) (string, error) {
	p, err := parseLANParam(d, 6)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3], p[4], p[5]), nil
}

// ip6Address is one entry of parameter 56 (static) or 59 (dynamic).
type ip6Address struct {
	Enabled bool // static: the enable bit
	Source  byte // dynamic: SLAAC or DHCPv6
	Addr    netip.Addr
	Prefix  int
	Status  byte
}

// String is the address as ipmitool prints it, with its prefix length.
func (a ip6Address) String() string { return fmt.Sprintf("%s/%d", a.Addr, a.Prefix) }

func parseIP6AddressParam(d []byte) (ip6Address, error) {
	p, err := parseLANParam(d, 20)
	if err != nil {
		return ip6Address{}, err
	}
	// p[0] is the set selector.
	return ip6Address{Enabled: p[1]&0x80 != 0, Source: p[1] & 0x0f, Addr: netip.AddrFrom16([16]byte(p[2:18])),
		Prefix: int(p[18]), Status: p[19]}, nil
}

// lanParam asks for a parameter; errors mean the channel has none.
func lanParam(ctx context.Context, c ipmiConn, channel, param, set byte) ([]byte, error) {
	return c.send(ctx, netfnTransport, cmdGetLANConfig, lanConfigRequest(channel, param, set))
}

// isLANChannel skips channels the BMC says are not LAN, as ipmitool's
// `lan print` does. A BMC that cannot tell is asked anyway.
func isLANChannel(ctx context.Context, c ipmiConn, channel byte) bool {
	d, err := c.send(ctx, netfnApp, cmdGetChannelInfo, []byte{channel & 0x0f})
	if err != nil {
		var ce *ipmiCompletionError
		return errors.As(err, &ce) && ce.Code == 0xc1 // Get Channel Info itself unsupported
	}
	m, err := parseChannelMedium(d)
	return err == nil && (m == channelMediumLAN || m == channelMediumLANOth)
}

// ip6Addresses reads a channel's static and dynamic IPv6 addresses, as
// `lan6 print` lists them (static first).
func ip6Addresses(ctx context.Context, c ipmiConn, channel byte) (static, dynamic []ip6Address) {
	d, err := lanParam(ctx, c, channel, lanParamIP6Status, 0)
	if err != nil {
		return nil, nil
	}
	counts, err := parseLANParam(d, 2)
	if err != nil {
		return nil, nil
	}
	read := func(param byte, n byte) []ip6Address {
		var out []ip6Address
		for i := byte(0); i < n && ctx.Err() == nil; i++ {
			d, err := lanParam(ctx, c, channel, param, i)
			if err != nil {
				continue
			}
			if a, err := parseIP6AddressParam(d); err == nil {
				out = append(out, a)
			}
		}
		return out
	}
	return read(lanParamIP6Static, counts[0]), read(lanParamIP6Dynamic, counts[1])
}

// bmcAddresses applies IPA's get_bmc_address, get_bmc_v6address and
// get_bmc_mac to channels 1-11. mac is nil when no channel qualifies
// (IPA then leaves bmc_mac out).
func bmcAddresses(ctx context.Context, c ipmiConn) (v4, v6 string, mac *string) {
	v4, v6 = noBMCAddress, noBMCV6Address
	v4Found, v6Found := false, false
	for ch := byte(ipmiFirstChannel); ch <= ipmiLastChannel && ctx.Err() == nil; ch++ {
		if !isLANChannel(ctx, c, ch) {
			continue
		}
		var ip string
		if d, err := lanParam(ctx, c, ch, lanParamIPAddress, 0); err == nil {
			ip, _ = parseIPv4Param(d)
		}
		// get_bmc_address: the first channel with an address other than
		// 0.0.0.0.
		if !v4Found && ip != "" && ip != noBMCAddress {
			v4, v4Found = ip, true
		}
		var static, dynamic []ip6Address
		ip6Read := false
		// get_bmc_v6address: a channel with IPv6 enabled, its first active
		// SLAAC/DHCPv6 address, else its first active enabled static one.
		if !v6Found {
			if d, err := lanParam(ctx, c, ch, lanParamIP6Enables, 0); err == nil {
				if e, err := parseLANParam(d, 1); err == nil && (e[0] == 1 || e[0] == 2) {
					static, dynamic = ip6Addresses(ctx, c, ch)
					ip6Read = true
					if a, ok := activeIP6(static, dynamic); ok {
						v6, v6Found = a, true
					}
				}
			}
		}
		// get_bmc_mac: the first channel with an IPv4 address and a MAC
		// other than zero; with 0.0.0.0 the channel needs an IPv6 address
		// that is neither unspecified (::…) nor link-local.
		if mac != nil || ip == "" {
			continue
		}
		m := ""
		if d, err := lanParam(ctx, c, ch, lanParamMACAddress, 0); err == nil {
			m, _ = parseMACParam(d)
		}
		if m == "" || m == "00:00:00:00:00:00" {
			continue
		}
		if ip == noBMCAddress {
			if !ip6Read {
				static, dynamic = ip6Addresses(ctx, c, ch)
			}
			if !usableIP6(append(static, dynamic...)) {
				continue
			}
		}
		mac = &m
	}
	return v4, v6, mac
}

func activeIP6(static, dynamic []ip6Address) (string, bool) {
	for _, a := range dynamic {
		if (a.Source == ip6SourceSLAAC || a.Source == ip6SourceDHCPv6) && a.Status == ip6StatusActive && !a.Addr.IsUnspecified() {
			return a.Addr.String(), true
		}
	}
	for _, a := range static {
		if a.Enabled && a.Status == ip6StatusActive && !a.Addr.IsUnspecified() {
			return a.Addr.String(), true
		}
	}
	return "", false
}

// usableIP6 is IPA's test over the addresses `lan6 print` lists. When the
// BMC lists none (no IPv6 support), IPA's awk prints an empty line, which
// passes its test: the MAC is then reported, and so it is here.
func usableIP6(addrs []ip6Address) bool {
	if len(addrs) == 0 {
		return true
	}
	for _, a := range addrs {
		s := a.String()
		if !(len(s) >= 2 && s[:2] == "::") && !(len(s) >= 4 && s[:4] == "fe80") {
			return true
		}
	}
	return false
}

// ipmiDevice is an open /dev/ipmiN, through u-root's pkg/ipmi (the
// kernel's ipmi_devintf ioctls): requests go to the BMC through the
// system interface, one at a time. u-root's SendRecv waits for the
// answer with the file's read deadline (its own 10 s), dropping answers
// to earlier requests; the context and the per-request timeout reach it
// as that deadline.
type ipmiDevice struct {
	dev     *ipmi.IPMI
	timeout time.Duration // for each request
}

func openIPMI(path string, timeout time.Duration) (*ipmiDevice, error) {
	dev, err := ipmi.OpenPath(path)
	if err != nil {
		return nil, err
	}
	return &ipmiDevice{dev: dev, timeout: timeout}, nil
}

func (d *ipmiDevice) Close() error { return d.dev.Close() }

// send writes a request and waits, at most d.timeout and until ctx ends,
// for its response.
func (d *ipmiDevice) send(ctx context.Context, netfn, cmd byte, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	returned := make(chan struct{})
	stop := context.AfterFunc(rctx, func() {
		// SendRecv sets its own deadline when it starts waiting: ours is
		// set again until it returns, so an end that comes just before
		// that is not lost.
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			d.dev.File().SetReadDeadline(time.Unix(1, 0))
			select {
			case <-returned:
				return
			case <-t.C:
			}
		}
	})
	if len(data) == 0 {
		data = nil // SendRecv takes &data[0] of any slice that is not nil
	}
	resp, err := d.dev.SendRecv(ipmi.NetFn(netfn), ipmi.Command(cmd), data)
	close(returned)
	stop()
	var cc ipmi.CompletionError
	switch {
	case err == nil:
		// SendRecv's answer starts with the completion code (OK here).
		return completion(netfn, cmd, resp)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case rctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("ipmi: no answer to netfn 0x%02x cmd 0x%02x within %s: %w", netfn, cmd, d.timeout, os.ErrDeadlineExceeded)
	case errors.As(err, &cc):
		return nil, &ipmiCompletionError{NetFn: netfn, Cmd: cmd, Code: byte(cc)}
	}
	return nil, fmt.Errorf("ipmi: netfn 0x%02x cmd 0x%02x: %w", netfn, cmd, err)
}

// completion splits a response into its completion code and data.
func completion(netfn, cmd byte, resp []byte) ([]byte, error) {
	if len(resp) == 0 {
		return nil, fmt.Errorf("ipmi: netfn 0x%02x cmd 0x%02x: empty response", netfn, cmd)
	}
	if resp[0] != 0 {
		return nil, &ipmiCompletionError{NetFn: netfn, Cmd: cmd, Code: resp[0]}
	}
	return resp[1:], nil
}

// ipmiDevicePaths are where IPA looks for an IPMI character device.
var ipmiDevicePaths = []string{"dev/ipmi*", "dev/ipmi/*", "dev/ipmidev/*"}

func findIPMIDevice(o *options) string {
	for _, pat := range ipmiDevicePaths {
		ms, _ := filepath.Glob(o.path(pat))
		for _, m := range ms {
			if st, err := os.Stat(m); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return m
			}
		}
	}
	return ""
}

// ipmiTimeout bounds each request (the kernel's own retries end sooner),
// bmcScanTimeout the whole scan of a BMC that answers slowly.
const ipmiTimeout, bmcScanTimeout = 5 * time.Second, 30 * time.Second

// bmcResult is what the BMC said, kept for later inventories: IPA caches
// it too, and a slow BMC answers dozens of requests per scan.
type bmcResult struct {
	v4, v6 string
	mac    *string
	info   *BMC
}

var bmcCache sync.Map // device path -> *bmcResult

// collectBMC fills the BMC fields: null without an IPMI device (IPA's
// rule), IPA's placeholders when the BMC cannot be read.
func collectBMC(ctx context.Context, inv *Inventory, o *options) {
	dev := findIPMIDevice(o)
	if dev == "" {
		return
	}
	r, ok := bmcCache.Load(dev)
	if !ok {
		res, err := readBMC(ctx, dev, o.log)
		if err != nil {
			o.log.Warn("inventory: cannot read the BMC; reporting IPA's placeholder addresses", "device", dev, "error", err)
			res = &bmcResult{v4: noBMCAddress, v6: noBMCV6Address}
		} else {
			bmcCache.Store(dev, res)
		}
		r = res
	}
	res := r.(*bmcResult)
	v4, v6 := res.v4, res.v6
	inv.BMCAddress, inv.BMCV6Address, inv.BMCMAC, inv.BMC = &v4, &v6, res.mac, res.info
}

func readBMC(ctx context.Context, dev string, log *slog.Logger) (*bmcResult, error) {
	d, err := openIPMI(dev, ipmiTimeout)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(ctx, bmcScanTimeout)
	defer cancel()
	res := &bmcResult{}
	b, err := d.send(ctx, netfnApp, cmdGetDeviceID, nil)
	var ce *ipmiCompletionError
	switch {
	case errors.As(err, &ce):
		log.Warn("inventory: BMC Get Device ID", "error", err)
	case err != nil:
		// No answer at all: the LAN scan would only time out 11 times more.
		return nil, err
	default:
		if res.info, err = parseDeviceID(b); err != nil {
			log.Warn("inventory: BMC Get Device ID", "error", err)
		}
	}
	res.v4, res.v6, res.mac = bmcAddresses(ctx, d)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ipmi: scanning the BMC's LAN channels: %w", err)
	}
	return res, nil
}
