package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/netcfg"
)

// machine is the Hardware and DiskSelector of the machine goipa runs on,
// read through the inventory package and limited to goipa-devices.
type machine struct {
	cfg *Config
	log *slog.Logger
	// skipBMC returns lookup's agent_skip_bmc_detect.
	skipBMC func() bool

	lldpMu   sync.Mutex
	lldp     map[string][]inventory.LLDPTLV
	lldpDone chan struct{} // closed when CollectLLDP is over; nil when not collecting
}

// CollectLLDP listens for LLDP on every NIC in the background until
// every NIC with carrier has heard it or ipa-lldp-timeout passed; the
// inventory reports what was heard, and WaitForInspection waits for it.
func (m *machine) CollectLLDP(ctx context.Context) {
	m.lldpDone = make(chan struct{})
	go func() {
		defer close(m.lldpDone)
		ifs, err := inventory.Interfaces(ctx, m.opts()...)
		if err != nil {
			m.log.Warn("lldp: listing interfaces", "error", err)
			return
		}
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		start := time.Now()
		got, err := netcfg.CollectLLDP(ctx, names, m.cfg.LLDPTimeout, netcfg.WithCarrierOnly(), netcfg.WithWaitLogger(m.log))
		if err != nil {
			m.log.Warn("lldp", "error", err)
		}
		res := map[string][]inventory.LLDPTLV{}
		for name, tlvs := range got {
			n := netcfg.Summarize(tlvs)
			m.log.Info("lldp neighbour", "interface", name, "switch", n.SystemName, "chassis", n.ChassisID, "port", n.PortID, "vlans", n.VLANs)
			for _, t := range tlvs {
				res[name] = append(res[name], inventory.LLDPTLV{Type: t.Type, Value: t.Value})
			}
		}
		m.log.Info("lldp collection done", "heard", len(got), "interfaces", len(names), "took", time.Since(start).Round(time.Millisecond))
		m.lldpMu.Lock()
		m.lldp = res
		m.lldpMu.Unlock()
	}()
}

// WaitForInspection waits, bounded, for what inspection data should
// hold: LLDP (ipa-collect-lldp, bounded by ipa-lldp-timeout) and the
// NICs' addresses (IPA's wait_for_dhcp: every NIC with carrier under
// ipa-inspection-dhcp-all-interfaces, else the boot NIC; bounded by
// ipa-inspection-dhcp-wait-timeout, 0 = no wait).
func (m *machine) WaitForInspection(ctx context.Context) {
	if m.lldpDone != nil {
		select {
		case <-m.lldpDone:
		case <-ctx.Done():
			return
		}
	}
	links := m.dhcpWaitLinks(ctx)
	if len(links) == 0 || m.cfg.InspectionDHCPWaitTimeout <= 0 {
		return
	}
	start := time.Now()
	missing := netcfg.WaitForAddresses(ctx, links, m.cfg.InspectionDHCPWaitTimeout)
	if len(missing) > 0 {
		m.log.Warn("not every network interface got an IPv4 address before inspection", "timeout", m.cfg.InspectionDHCPWaitTimeout, "missing", missing)
		return
	}
	m.log.Info("network interfaces have their addresses", "interfaces", links, "took", time.Since(start).Round(time.Millisecond))
}

// dhcpWaitLinks are the NICs whose address inspection waits for.
func (m *machine) dhcpWaitLinks(ctx context.Context) []string {
	ifs, err := inventory.Interfaces(ctx, m.opts()...)
	if err != nil {
		m.log.Warn("listing interfaces for the DHCP wait", "error", err)
		return nil
	}
	return dhcpWaitLinks(ifs, m.cfg.InspectionDHCPAllInterfaces, m.cfg.BootIF)
}

// dhcpWaitLinks picks IPA's wait_for_dhcp interfaces: all of them, or
// the one BOOTIF names (none when BOOTIF is unknown).
func dhcpWaitLinks(ifs []inventory.Interface, all bool, bootif string) []string {
	boot := normalizeBootIF(bootif)
	var out []string
	for _, i := range ifs {
		if all || (boot != "" && strings.EqualFold(i.MACAddress, boot)) {
			out = append(out, i.Name)
		}
	}
	return out
}

// normalizeBootIF turns PXE's "01-aa-bb-cc-dd-ee-ff" into a MAC.
func normalizeBootIF(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.Count(s, "-") == 6 {
		_, s, _ = strings.Cut(s, "-")
	}
	return strings.ReplaceAll(s, "-", ":")
}

// NewMachine returns the inventory-backed hardware for cfg.
func NewMachine(cfg *Config, log *slog.Logger) *machine {
	return &machine{cfg: cfg, log: log, skipBMC: func() bool { return false }}
}

func (m *machine) opts() []inventory.Option {
	return []inventory.Option{
		inventory.WithDevices(m.cfg.Devices),
		inventory.WithBootIF(m.cfg.BootIF),
		inventory.WithLogger(m.log),
		inventory.WithSkipBMC(m.skipBMC()),
		inventory.WithBenchmarks(m.cfg.InspectionBenchmarks),
		inventory.WithLLDP(func(name string) []inventory.LLDPTLV {
			if !m.cfg.CollectLLDP {
				return nil
			}
			return m.heardLLDP(name)
		}),
		inventory.WithHeardLLDP(m.heardLLDP),
	}
}

// heardLLDP is what CollectLLDP heard on a NIC: nothing yet is an empty
// list, as IPA reports a NIC that heard nothing.
func (m *machine) heardLLDP(name string) []inventory.LLDPTLV {
	m.lldpMu.Lock()
	defer m.lldpMu.Unlock()
	if t, ok := m.lldp[name]; ok {
		return t
	}
	return []inventory.LLDPTLV{}
}

// WantsLLDP says whether the agent must listen for LLDP: for the
// inventory (ipa-collect-lldp), or for inspection's lldp collector, which
// listens in IPA whatever ipa-collect-lldp says.
func WantsLLDP(cfg *Config) bool {
	if cfg.CollectLLDP {
		return true
	}
	if cfg.InspectionCallbackURL == "" {
		return false
	}
	return slices.Contains(cfg.InspectionCollectors, "lldp")
}

func (m *machine) MACs(ctx context.Context) ([]string, error) {
	return inventory.MACs(ctx, m.opts()...)
}

func (m *machine) Inventory(ctx context.Context) (any, error) {
	return inventory.Collect(ctx, m.opts()...)
}

func (m *machine) InspectionData(ctx context.Context, collectors []string) (map[string]any, error) {
	inv, err := inventory.Collect(ctx, m.opts()...)
	if err != nil {
		return nil, err
	}
	return inventory.InspectionData(ctx, inv, collectors, m.opts()...), nil
}

// RootDisk implements DiskSelector, waiting for disks as IPA does
// (ipa-disk-wait-attempts x ipa-disk-wait-delay) when none matches yet.
func (m *machine) RootDisk(ctx context.Context, hints map[string]any) (string, error) {
	attempts := max(m.cfg.DiskWaitAttempts, 1)
	var lastErr error
	for i := 0; i < attempts; i++ {
		disks, err := inventory.BlockDevices(ctx, m.opts()...)
		if err == nil {
			d, err := inventory.SelectRootDisk(disks, hints)
			if err == nil {
				return d.Name, nil
			}
			var nf *inventory.DeviceNotFoundError
			if !errors.As(err, &nf) {
				return "", err // bad hints do not get better by waiting
			}
			lastErr = err
		} else {
			lastErr = err
		}
		if i+1 < attempts {
			m.log.Info("install disk not found yet, waiting", "attempt", i+1, "error", lastErr)
			if err := sleepCtx(ctx, m.cfg.DiskWaitDelay); err != nil {
				return "", err
			}
		}
	}
	return "", lastErr
}
