package vmedia

import (
	"context"
	"log/slog"
	"time"
)

// Options say where Load looks; the zero value is the ramdisk's own.
type Options struct {
	SysRoot string // default /sys
	DevRoot string // default /dev
	EtcRoot string // default /etc
	// Wait bounds how long to look for the ISO while the kernel is still
	// probing drives (no udev settle here); 0 looks once.
	Wait time.Duration
	Log  *slog.Logger
}

// Result is what the kernel parameters gain from virtual media.
type Result struct {
	// Params are the floppy's parameters.txt; they override the kernel
	// command line's (IPA's get_agent_params).
	Params map[string]string
	// Overrides are the configuration files' options in goipa's
	// parameter names; they override both (IPA's config file over its
	// kernel-parameter defaults).
	Overrides []Override
	// NetworkData is the ISO's openstack/latest/network_data.json.
	NetworkData []byte
	// Device is the ISO's device node, if one was found.
	Device string
}

// Load does at start what IPA does before it reads its configuration.
// With boot_method=vmedia on the kernel command line (cmdline): the
// virtual floppy's parameters.txt, and the boot ISO's configuration
// copied into EtcRoot with its network_data.json. Then, booted from
// virtual media or not, IPA's configuration files under EtcRoot are
// read. Nothing here is fatal: whatever cannot be read is logged and
// the rest still applies.
func Load(ctx context.Context, cmdline map[string]string, o Options) *Result {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	if o.EtcRoot == "" {
		o.EtcRoot = "/etc"
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	res := &Result{}
	f := Finder{SysRoot: o.SysRoot, DevRoot: o.DevRoot, Log: log.Debug}
	if cmdline["boot_method"] == "vmedia" {
		if d, ok := f.FindFloppy(); ok {
			p, err := ReadFloppyParams(ctx, d)
			if err != nil {
				log.Error("virtual floppy parameters not read", "device", d.Path, "error", err)
			} else {
				log.Info("virtual floppy parameters", "device", d.Path, "count", len(p))
				res.Params = p
			}
		}
		d, ok := f.Find(ISOLabels)
		for deadline := time.Now().Add(o.Wait); !ok && time.Now().Before(deadline) && ctx.Err() == nil; {
			time.Sleep(200 * time.Millisecond)
			d, ok = f.Find(ISOLabels)
		}
		if ok {
			res.Device = d.Path
			c, err := CopyConfig(ctx, d, o.EtcRoot, log.Info)
			if c != nil {
				res.NetworkData = c.NetworkData
				log.Info("virtual media configuration", "device", d.Path, "label", d.Label,
					"copied", c.Copied, "network_data", c.NetworkData != nil)
			}
			if err != nil {
				log.Error("virtual media configuration not copied", "device", d.Path, "error", err)
			}
		} else {
			log.Info("no virtual media device detected", "labels", ISOLabels)
		}
	}
	files, errs := ReadConfigFiles(o.EtcRoot)
	for _, err := range errs {
		log.Error("configuration file ignored", "error", err)
	}
	merged := map[string]string{}
	for k, v := range cmdline {
		merged[k] = v
	}
	for k, v := range res.Params {
		merged[k] = v
	}
	ovs, ignored := Overrides(files, merged)
	for _, i := range ignored {
		log.Warn("configuration option not used by goipa, ignored", "file", i.File, "section", i.Section, "option", i.Option)
	}
	for _, ov := range ovs {
		v := ov.Value
		if ov.Param == "ipa-agent-token" {
			v = "***"
		}
		log.Info("configuration file overrides a kernel parameter", "parameter", ov.Param, "value", v, "file", ov.File, "option", ov.Option)
	}
	res.Overrides = ovs
	return res
}
