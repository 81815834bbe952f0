package agent

import (
	"context"
	"log/slog"
	"slices"

	"github.com/goipa/goipa/inventory"
)

// machine is the Hardware and DiskSelector of the machine goipa runs
// on: inventory.Machine configured from the agent's parameters.
type machine struct {
	*inventory.Machine
	// skipBMC returns lookup's agent_skip_bmc_detect (set by New).
	skipBMC func() bool
}

// NewMachine returns the inventory-backed hardware for cfg.
func NewMachine(cfg *Config, log *slog.Logger) *machine {
	m := &machine{skipBMC: func() bool { return false }}
	m.Machine = inventory.NewMachine(inventory.MachineConfig{
		Devices:           cfg.Devices,
		BootIF:            cfg.BootIF,
		Benchmarks:        cfg.InspectionBenchmarks,
		CollectLLDP:       cfg.CollectLLDP,
		LLDPTimeout:       cfg.LLDPTimeout,
		DHCPAllInterfaces: cfg.InspectionDHCPAllInterfaces,
		DHCPWaitTimeout:   cfg.InspectionDHCPWaitTimeout,
		DiskWaitAttempts:  cfg.DiskWaitAttempts,
		DiskWaitDelay:     cfg.DiskWaitDelay,
		SkipBMC:           func() bool { return m.skipBMC() },
	}, log)
	return m
}

// Inventory is the inventory in Ironic's schema.
func (m *machine) Inventory(ctx context.Context) (any, error) { return m.Collect(ctx) }

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
