package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/goipa/goipa/agent"
	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/initramfs/boot"
	"github.com/goipa/goipa/kernelparams"
	"github.com/goipa/goipa/logring"
	"github.com/goipa/goipa/netcfg"
)

func init() {
	register("agent", "run the agent on a host whose network is up (power commands simulated)", runAgent)
	register("init", "PID 1 of the ramdisk: mounts, network, then the agent", runInit)
}

// splitCmdlineFile takes --cmdline-file out of args: it says where the
// kernel parameters come from, it is not one of them.
func splitCmdlineFile(args []string) (string, []string, error) {
	path := "/proc/cmdline"
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		switch {
		case (strings.HasPrefix(a, "-")) && strings.HasPrefix(name, "cmdline-file="):
			path = strings.TrimPrefix(name, "cmdline-file=")
		case (strings.HasPrefix(a, "-")) && name == "cmdline-file":
			if i+1 >= len(args) {
				return "", nil, errors.New("--cmdline-file needs a path")
			}
			i++
			path = args[i]
		default:
			rest = append(rest, a)
		}
	}
	return path, rest, nil
}

// agentHelp prints the usage of `goipa agent` or `goipa init` on stdout
// and reports true when args ask for it. The kernel parameters are not
// a flag.FlagSet of this command (agent.ParseConfig owns them), so help
// is looked for here, before anything else runs: `goipa init --help`
// must not mount anything.
func agentHelp(name string, args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			fmt.Printf("usage: goipa %s [--cmdline-file=PATH] [--<kernel parameter>=VALUE ...]\n\n%s\n\n"+
				"parameters (kernel command line or flags; flags win):\n", name, subcommands[name].summary)
			agent.PrintDefaults(os.Stdout)
			return true
		}
	}
	return false
}

func loadConfig(args []string) (*agent.Config, error) {
	path, rest, err := splitCmdlineFile(args)
	if err != nil {
		return nil, err
	}
	return agent.LoadConfig(path, rest)
}

// logLevel is the process's log level: ipa-debug, or later an mDNS
// ipa_debug record the operator allowed.
var logLevel = new(slog.LevelVar)

// newLogger logs text for a person on the console, one line per event,
// and keeps the newest lines for log.collect_system_logs.
func newLogger(cfg *agent.Config, console io.Writer) (*slog.Logger, *logring.Buffer) {
	buf := logring.New(4 << 20)
	if cfg.Debug {
		logLevel.Set(slog.LevelDebug)
	}
	h := slog.NewTextHandler(io.MultiWriter(console, buf), &slog.HandlerOptions{Level: logLevel})
	l := slog.New(h)
	if cfg.GlobalRequestID != "" {
		l = l.With("request_id", cfg.GlobalRequestID)
	}
	return l, buf
}

func runAgent(ctx context.Context, args []string) error {
	if agentHelp("agent", args) {
		return flag.ErrHelp
	}
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	return startAgent(ctx, cfg, false)
}

func startAgent(ctx context.Context, cfg *agent.Config, realPower bool) error {
	log, buf := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	return runAgentWith(ctx, cfg, realPower, log, buf)
}

func runAgentWith(ctx context.Context, cfg *agent.Config, realPower bool, log *slog.Logger, buf *logring.Buffer) error {
	log.Info("goipa starting", "version", agent.Version, "ipa_version", agent.IPAVersion, "pid", os.Getpid(),
		"standalone", cfg.Standalone, "api_urls", cfg.APIURLs, "devices", cfg.Devices, "real_power", realPower || cfg.Power == "system")
	hw := agent.NewMachine(cfg, log)
	if agent.WantsLLDP(cfg) {
		hw.CollectLLDP(ctx)
	}
	var a *agent.Agent
	lookupConfig := func() map[string]any { return a.LookupConfig() }
	a, err := agent.New(cfg,
		agent.WithLogger(log),
		agent.WithLogBuffer(buf),
		agent.WithHardware(hw),
		agent.WithRealPower(realPower),
		agent.WithLogLevel(logLevel),
		rescueOption(ctx, log, cfg, realPower),
		agent.WithDeploy(hw, agent.NewImageEngine(cfg, log, lookupConfig), agent.NewConfigDriveWriter(log)),
	)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// runInit is PID 1 in the ramdisk. It never returns on its own: a PID 1
// that exits panics the kernel, and an operator at the console gets
// nothing to look at.
func runInit(ctx context.Context, args []string) error {
	if agentHelp("init", args) {
		return flag.ErrHelp
	}
	if err := boot.MountKernelFilesystems(); err != nil {
		fmt.Fprintln(os.Stderr, "goipa init: mounts:", err)
	}
	path, rest, err := splitCmdlineFile(args)
	if err != nil {
		boot.RescueShell(ctx, fmt.Errorf("configuration: %w", err))
		return err
	}
	rawCmdline, err := os.ReadFile(path)
	if err != nil {
		boot.RescueShell(ctx, fmt.Errorf("configuration: reading the kernel command line: %w", err))
		return err
	}
	// The drivers come before the configuration: with boot_method=vmedia
	// part of it is on the virtual CD.
	log, buf, level := newInitLogger(string(rawCmdline), os.Stderr)
	slog.SetDefault(log)
	start := time.Now()
	loaded, err := boot.Coldplug(ctx, log)
	if err != nil {
		log.Error("module coldplug", "error", err)
	}
	media := readBootMedia(ctx, log, string(rawCmdline))
	cfg, err := agent.ParseConfig(media.cmdline, append(media.flags, rest...))
	if err != nil {
		boot.RescueShell(ctx, fmt.Errorf("configuration: %w", err))
		return err
	}
	if cfg.Debug {
		level.Set(slog.LevelDebug)
	}
	if cfg.GlobalRequestID != "" {
		log = log.With("request_id", cfg.GlobalRequestID)
		slog.SetDefault(log)
	}
	networkDataModules(log, media.networkData)
	if cfg.EnableVLANInterfaces != "" {
		// No udev or modprobe here to load it when the first VLAN link is made.
		if err := boot.LoadModules("8021q"); err != nil {
			log.Error("loading 8021q for VLAN interfaces", "error", err)
		}
	}
	// Software RAID: nothing asks for md by modalias, and without udev or
	// modprobe the kernel cannot load a RAID level on demand; arrays on
	// the disks are assembled when the agent starts (agent/raid_linux.go).
	if err := boot.LoadModules("md_mod", "raid0", "raid1"); err != nil {
		log.Error("loading the md (software RAID) modules", "error", err)
	}
	// ext4: a bootc deploy's root filesystem, and what inject_files and
	// grub-install mount; the kernel cannot request it without modprobe.
	if err := boot.LoadModules("ext4"); err != nil {
		log.Error("loading ext4", "error", err)
	}
	if err := boot.MountEFIVars(); err != nil {
		log.Error("efivarfs: UEFI boot entries cannot be written", "error", err)
	}
	// dm-multipath: without multipathd (or udev and modprobe to load
	// the target on demand) goipa loads the driver and assembles a map
	// per LUN reached through several paths itself, before anything
	// lists the disks, so the inventory, erase and image writes see the
	// map and never a single path.
	if err := boot.LoadModules("dm_mod", "dm_multipath", "dm_service_time"); err != nil {
		log.Error("loading the dm-multipath modules", "error", err)
	}
	disks, nics := boot.WaitForHardware(ctx, 10*time.Second)
	// The maps are assembled while the network comes up: waiting for
	// the SCSI scans to settle then costs no boot time.
	multipathDone := make(chan struct{})
	go func() {
		defer close(multipathDone)
		if _, err := disk.AssembleMultipath(ctx, log); err != nil {
			log.Error("multipath", "error", err)
		}
	}()
	if b, err := os.ReadFile("/proc/cmdline"); err == nil && kernelparams.Split(string(b))["goipa-snapshot-console"] == "1" {
		if err := printSnapshot(ctx, os.Stdout); err != nil {
			log.Error("snapshot", "error", err)
		}
	}
	log.Info("hardware ready", "modules", len(loaded), "disks", disks, "nics", nics, "duration", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	st, err := netcfg.Up(ctx, netcfg.Config{BootIF: cfg.BootIF, KernelIP: cfg.KernelIP, VLANs: cfg.EnableVLANInterfaces, LLDPTimeout: cfg.LLDPTimeout, NetworkData: media.networkData, Log: log})
	if err != nil {
		// Not fatal: DHCP goes on in the background, lookup retries.
		log.Error("network not ready", "error", err)
	} else {
		for _, i := range st.Interfaces() {
			log.Info("network", "link", i.Name, "address", i.Address, "source", i.Source)
		}
	}
	log.Info("network step done", "duration", time.Since(start).Round(time.Millisecond))
	<-multipathDone
	if err := runAgentWith(ctx, cfg, true, log, buf); err != nil {
		boot.RescueShell(ctx, fmt.Errorf("the agent stopped: %w", err))
	}
	<-ctx.Done()
	return nil
}
