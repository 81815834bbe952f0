package agent

import (
	"fmt"
	"sort"
)

// lookupConfigKeys says, for each key of the lookup's `config` object
// (Ironic master's ramdisk.config()), whether goipa honours it and, if
// not, why. Keys goipa honours are read where they matter (heartbeat
// timeout, token, image formats, MD5, BIOS boot loader, BMC detection);
// the others are logged once, so an operator who set them in Ironic
// learns they have no effect here.
var lookupConfigKeys = map[string]string{
	"heartbeat_timeout":              "",
	"agent_token":                    "",
	"agent_token_required":           "",
	"agent_md5_checksum_enable":      "",
	"permitted_image_formats":        "",
	"enable_bios_bootloader_install": "",
	"agent_skip_bmc_detect":          "",
	"tls_min_version":                "", // the auto-TLS server's minimum version
	"disable_deep_image_inspection": "goipa always checks what an image is before writing it (compression, qcow2 header, " +
		"no backing file); turning the checks off would let a crafted image through",
	"metrics":           "goipa serves Prometheus metrics on its API (/metrics); it has no statsd backend to configure",
	"metrics_statsd":    "goipa serves Prometheus metrics on its API (/metrics); it has no statsd backend to configure",
	"agent_containers":  "goipa has no container steps (IPA's ContainerHardwareManager), so there is nothing to allow or run",
	"tls_cipher_suites": "", // the auto-TLS server's suites (server.go; ipa-tls-cipher-suites wins)
}

// applyLookupConfig adopts the lookup config keys that change the agent
// itself and logs, once per agent, each key goipa does not honour.
// Called with a.mu held.
func (a *Agent) applyLookupConfig(cfg map[string]any) {
	// IPA only ever turns this on from Ironic (agent.process_lookup_data),
	// never off: ipa-enable-bios-bootloader-install=1 on the kernel
	// command line still wins. Commands run after lookup, so nothing
	// reads the field while it changes.
	if on, _ := cfg["enable_bios_bootloader_install"].(bool); on && !a.cfg.EnableBIOSBootloaderInstall {
		a.cfg.EnableBIOSBootloaderInstall = true
		a.log.Info("Ironic enables legacy BIOS boot loader installation (enable_bios_bootloader_install)")
	}
	if skip, _ := cfg["agent_skip_bmc_detect"].(bool); skip {
		a.log.Info("Ironic has indicated BMC detection should be skipped (agent_skip_bmc_detect)")
	}
	for _, k := range unhonouredLookupKeys(cfg) {
		if a.loggedConfigKeys == nil {
			a.loggedConfigKeys = map[string]bool{}
		}
		if a.loggedConfigKeys[k] {
			continue
		}
		a.loggedConfigKeys[k] = true
		reason, known := lookupConfigKeys[k]
		if !known {
			reason = "a key this goipa does not know (a newer Ironic?)"
		}
		a.log.Warn("lookup config key ignored", "key", k, "value", fmt.Sprint(cfg[k]), "reason", reason)
	}
}

// unhonouredLookupKeys lists, sorted, the keys of cfg goipa ignores:
// known with a reason, or unknown. A key set to null or false ("off")
// asks for nothing, so ignoring it loses nothing and is not listed.
func unhonouredLookupKeys(cfg map[string]any) []string {
	var out []string
	for k, v := range cfg {
		if reason, known := lookupConfigKeys[k]; known && reason == "" {
			continue
		}
		if v == nil || v == false || v == "" {
			continue
		}
		// Ironic always sends both metrics keys; they ask for something
		// only when the backend is statsd (its default, noop, collects
		// nothing, which is what an agent without statsd does anyway).
		if (k == "metrics" || k == "metrics_statsd") && !statsdRequested(cfg) {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// statsdRequested says whether lookup's metrics config picks IPA's
// statsd backend.
func statsdRequested(cfg map[string]any) bool {
	m, _ := cfg["metrics"].(map[string]any)
	return m["backend"] == "statsd"
}
