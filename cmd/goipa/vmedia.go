package main

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/goipa/goipa/initramfs/boot"
	"github.com/goipa/goipa/kernelparams"
	"github.com/goipa/goipa/logring"
	"github.com/goipa/goipa/netcfg"
	"github.com/goipa/goipa/vmedia"
)

// bootMedia is what `goipa init` takes from virtual media before it
// reads its configuration.
type bootMedia struct {
	cmdline     string   // the kernel command line with the floppy's parameters.txt over it
	flags       []string // the configuration files' options, as flags (before the user's own)
	networkData *netcfg.NetworkData
}

// readBootMedia does IPA's start-up reading (copy_config_from_vmedia,
// get_agent_params, the config files): with boot_method=vmedia the
// virtual CD's configuration goes into /etc and its network_data.json
// is parsed. Nothing here stops the boot: a problem is logged and the
// kernel parameters still apply.
func readBootMedia(ctx context.Context, log *slog.Logger, cmdline string) bootMedia {
	params := kernelparams.Split(cmdline)
	out := bootMedia{cmdline: cmdline}
	if params["boot_method"] == "vmedia" {
		// No udev or modprobe: the filesystems and charsets are asked for
		// by no device, so load them before looking at the media.
		if err := boot.LoadModules("sr_mod", "isofs", "vfat", "nls_cp437", "nls_ascii", "usb_storage", "uas"); err != nil {
			log.Warn("loading virtual media modules", "error", err)
		}
	}
	res := vmedia.Load(ctx, params, vmedia.Options{Log: log, Wait: 5 * time.Second})
	out.cmdline = mergeCmdline(cmdline, res.Params)
	out.flags = vmedia.Flags(res.Overrides)
	if res.NetworkData != nil {
		nd, err := netcfg.ParseNetworkData(res.NetworkData)
		if err != nil {
			log.Error("network_data.json ignored", "device", res.Device, "error", err)
		} else {
			out.networkData = nd
		}
	}
	return out
}

// mergeCmdline appends the floppy's parameters to the command line, so
// they win as in IPA's get_agent_params; quoted, so kernelparams.Split keeps
// each whole.
func mergeCmdline(cmdline string, params map[string]string) string {
	if len(params) == 0 {
		return cmdline
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(strings.TrimSpace(cmdline))
	for _, k := range keys {
		v := strings.ReplaceAll(params[k], `"`, "")
		b.WriteString(" " + k + `="` + v + `"`)
	}
	return b.String()
}

// networkDataModules loads what the network_data.json's links need:
// nothing asks for bonding or 8021q by modalias.
func networkDataModules(log *slog.Logger, nd *netcfg.NetworkData) {
	if nd == nil {
		return
	}
	var mods []string
	for _, l := range nd.Links {
		switch l.Type {
		case "bond":
			mods = append(mods, "bonding")
		case "vlan":
			mods = append(mods, "8021q")
		}
	}
	if len(mods) > 0 {
		if err := boot.LoadModules(mods...); err != nil {
			log.Error("loading modules for network_data.json", "modules", mods, "error", err)
		}
	}
}

// newInitLogger is newLogger before the configuration is known: its
// level follows the command line's ipa-debug now and cfg.Debug later.
func newInitLogger(cmdline string, console io.Writer) (*slog.Logger, *logring.Buffer, *slog.LevelVar) {
	buf := logring.New(4 << 20)
	level := new(slog.LevelVar)
	if d := kernelparams.Split(cmdline)["ipa-debug"]; d == "1" || strings.EqualFold(d, "true") {
		level.Set(slog.LevelDebug)
	}
	h := slog.NewTextHandler(io.MultiWriter(console, buf), &slog.HandlerOptions{Level: level})
	return slog.New(h), buf, level
}
