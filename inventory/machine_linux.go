package inventory

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/goipa/goipa/netcfg"
)

// MachineConfig is what the agent's parameters say about reading the
// machine it runs on.
type MachineConfig struct {
	Devices     []string // goipa-devices
	BootIF      string   // BOOTIF
	Benchmarks  []string // ipa-inspection-benchmarks
	CollectLLDP bool     // ipa-collect-lldp: the inventory's NICs carry what LLDP heard
	LLDPTimeout time.Duration
	// DHCPAllInterfaces and DHCPWaitTimeout are IPA's wait_for_dhcp
	// before inspection (ipa-inspection-dhcp-all-interfaces,
	// ipa-inspection-dhcp-wait-timeout; 0 = no wait).
	DHCPAllInterfaces bool
	DHCPWaitTimeout   time.Duration
	// DiskWaitAttempts and DiskWaitDelay are IPA's wait for the install
	// disk (ipa-disk-wait-attempts x ipa-disk-wait-delay).
	DiskWaitAttempts int
	DiskWaitDelay    time.Duration
	// SkipBMC is asked at every collection (lookup's
	// agent_skip_bmc_detect arrives after the machine is made).
	SkipBMC func() bool
}

// Machine is the machine goipa runs on, read with one configuration:
// its inventory, MACs, inspection data and install disk, limited to
// goipa-devices, with LLDP heard in the background (CollectLLDP).
type Machine struct {
	cfg  MachineConfig
	log  *slog.Logger
	lldp *netcfg.LLDPWatch // nil when not listening
}

// NewMachine returns the machine cfg describes.
func NewMachine(cfg MachineConfig, log *slog.Logger) *Machine {
	if cfg.SkipBMC == nil {
		cfg.SkipBMC = func() bool { return false }
	}
	return &Machine{cfg: cfg, log: log}
}

// CollectLLDP listens for LLDP on every NIC in the background until
// every NIC with carrier has heard it or LLDPTimeout passed
// (netcfg.WatchLLDP); the inventory reports what was heard, and
// WaitForInspection waits for it.
func (m *Machine) CollectLLDP(ctx context.Context) {
	m.lldp = netcfg.WatchLLDP(ctx, func(ctx context.Context) ([]string, error) {
		ifs, err := Interfaces(ctx, m.opts()...)
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return names, err
	}, m.cfg.LLDPTimeout, netcfg.WithWaitLogger(m.log))
}

// WaitForInspection waits, bounded, for what inspection data should
// hold: LLDP (when CollectLLDP runs, bounded by LLDPTimeout) and the
// NICs' addresses (IPA's wait_for_dhcp: every NIC with carrier under
// DHCPAllInterfaces, else the boot NIC; bounded by DHCPWaitTimeout).
func (m *Machine) WaitForInspection(ctx context.Context) {
	if m.lldp != nil {
		select {
		case <-m.lldp.Done():
		case <-ctx.Done():
			return
		}
	}
	if m.cfg.DHCPWaitTimeout <= 0 {
		return
	}
	ifs, err := Interfaces(ctx, m.opts()...)
	if err != nil {
		m.log.Warn("listing interfaces for the DHCP wait", "error", err)
		return
	}
	links := dhcpWaitLinks(ifs, m.cfg.DHCPAllInterfaces, m.cfg.BootIF)
	if len(links) == 0 {
		return
	}
	start := time.Now()
	if missing := netcfg.WaitForAddresses(ctx, links, m.cfg.DHCPWaitTimeout); len(missing) > 0 {
		m.log.Warn("not every network interface got an IPv4 address before inspection", "timeout", m.cfg.DHCPWaitTimeout, "missing", missing)
		return
	}
	m.log.Info("network interfaces have their addresses", "interfaces", links, "took", time.Since(start).Round(time.Millisecond))
}

// dhcpWaitLinks picks IPA's wait_for_dhcp interfaces: all of them, or
// the one BOOTIF names (none when BOOTIF is unknown).
func dhcpWaitLinks(ifs []Interface, all bool, bootif string) []string {
	boot := NormalizeBootIF(bootif)
	var out []string
	for _, i := range ifs {
		if all || (boot != "" && strings.EqualFold(i.MACAddress, boot)) {
			out = append(out, i.Name)
		}
	}
	return out
}

func (m *Machine) opts() []Option {
	return []Option{
		WithDevices(m.cfg.Devices),
		WithBootIF(m.cfg.BootIF),
		WithLogger(m.log),
		WithSkipBMC(m.cfg.SkipBMC()),
		WithBenchmarks(m.cfg.Benchmarks),
		WithLLDP(func(name string) []LLDPTLV {
			if !m.cfg.CollectLLDP {
				return nil
			}
			return m.heardLLDP(name)
		}),
		WithHeardLLDP(m.heardLLDP),
	}
}

// heardLLDP is what CollectLLDP heard on a NIC: nothing yet is an empty
// list, as IPA reports a NIC that heard nothing.
func (m *Machine) heardLLDP(name string) []LLDPTLV {
	out := []LLDPTLV{}
	if m.lldp != nil {
		for _, t := range m.lldp.Heard(name) {
			out = append(out, LLDPTLV{Type: t.Type, Value: t.Value})
		}
	}
	return out
}

// MACs lists the NICs' MAC addresses, the boot NIC first.
func (m *Machine) MACs(ctx context.Context) ([]string, error) { return MACs(ctx, m.opts()...) }

// Collect is the inventory (Collect).
func (m *Machine) Collect(ctx context.Context) (*Inventory, error) { return Collect(ctx, m.opts()...) }

// InspectionData is the inspection callback's body for collectors.
func (m *Machine) InspectionData(ctx context.Context, collectors []string) (map[string]any, error) {
	inv, err := Collect(ctx, m.opts()...)
	if err != nil {
		return nil, err
	}
	return InspectionData(ctx, inv, collectors, m.opts()...), nil
}

// RootDisk is the install disk the hints pick (WaitForRootDisk).
func (m *Machine) RootDisk(ctx context.Context, hints map[string]any) (string, error) {
	return WaitForRootDisk(ctx, hints, m.cfg.DiskWaitAttempts, m.cfg.DiskWaitDelay, m.log, m.opts()...)
}

// WaitForRootDisk picks the install disk by root device hints
// (SelectRootDisk over BlockDevices), waiting for disks as IPA does
// (attempts x delay) while none matches yet: a disk driver may still be
// probing. Bad hints fail at once; they do not get better by waiting.
func WaitForRootDisk(ctx context.Context, hints map[string]any, attempts int, delay time.Duration, log *slog.Logger, opts ...Option) (string, error) {
	attempts = max(attempts, 1)
	var lastErr error
	for i := 0; i < attempts; i++ {
		disks, err := BlockDevices(ctx, opts...)
		if err == nil {
			d, err := SelectRootDisk(disks, hints)
			if err == nil {
				return d.Name, nil
			}
			var nf *DeviceNotFoundError
			if !errors.As(err, &nf) {
				return "", err
			}
			lastErr = err
		} else {
			lastErr = err
		}
		if i+1 < attempts {
			log.Info("install disk not found yet, waiting", "attempt", i+1, "error", lastErr)
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(delay):
			}
		}
	}
	return "", lastErr
}
