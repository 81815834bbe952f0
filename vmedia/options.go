package vmedia

import (
	"sort"
	"strings"
)

// ipaOptions maps IPA's [DEFAULT] option names (ironic_python_agent/
// config.py) to the kernel parameter goipa reads for the same setting.
// Most are "ipa-" plus the option with '-' for '_'; the exceptions are
// spelled out (ip_lookup_sleep is ipa-ip-lookup-timeout; insecure,
// cafile, certfile and keyfile have no kernel parameter in IPA and are
// ipa-* in goipa; debug is oslo.log's).
var ipaOptions = map[string]string{
	"api_url":                           "ipa-api-url",
	"global_request_id":                 "ipa-global-request-id",
	"listen_host":                       "ipa-listen-host",
	"listen_port":                       "ipa-listen-port",
	"listen_tls":                        "ipa-listen-tls",
	"enable_auto_tls":                   "ipa-enable-auto-tls",
	"advertise_host":                    "ipa-advertise-host",
	"advertise_port":                    "ipa-advertise-port",
	"advertise_protocol":                "ipa-advertise-protocol",
	"ip_lookup_attempts":                "ipa-ip-lookup-attempts",
	"ip_lookup_sleep":                   "ipa-ip-lookup-timeout",
	"network_interface":                 "ipa-network-interface",
	"lookup_timeout":                    "ipa-lookup-timeout",
	"lookup_interval":                   "ipa-lookup-interval",
	"lldp_timeout":                      "ipa-lldp-timeout",
	"collect_lldp":                      "ipa-collect-lldp",
	"standalone":                        "ipa-standalone",
	"inspection_callback_url":           "ipa-inspection-callback-url",
	"inspection_collectors":             "ipa-inspection-collectors",
	"inspection_dhcp_wait_timeout":      "ipa-inspection-dhcp-wait-timeout",
	"inspection_dhcp_all_interfaces":    "ipa-inspection-dhcp-all-interfaces",
	"hardware_initialization_delay":     "ipa-hardware-initialization-delay",
	"disk_wait_attempts":                "ipa-disk-wait-attempts",
	"disk_wait_delay":                   "ipa-disk-wait-delay",
	"insecure":                          "ipa-insecure",
	"cafile":                            "ipa-cafile",
	"certfile":                          "ipa-certfile",
	"keyfile":                           "ipa-keyfile",
	"ntp_server":                        "ipa-ntp-server",
	"agent_token":                       "ipa-agent-token",
	"agent_token_required":              "ipa-agent-token-required",
	"image_download_connection_timeout": "ipa-image-download-connection-timeout",
	"image_download_connection_retries": "ipa-image-download-connection-retries",
	"image_download_connection_retry_interval": "ipa-image-download-connection-retry-interval",
	"ironic_api_version":                       "ipa-ironic-api-version",
	"enable_vlan_interfaces":                   "ipa-enable-vlan-interfaces",
	"ignore_bootloader_failure":                "ipa-ignore-bootloader-failure",
	"inject_files_priority":                    "ipa-inject-files-priority",
	"guard_special_filesystems":                "ipa-guard-special-filesystems",
	"http_request_timeout":                     "ipa-http-request-timeout",
	"debug":                                    "ipa-debug",
}

// sslOptions are oslo_service's [ssl] options IPA serves its API with
// when listen_tls is set; goipa serves with ipa-certfile/ipa-keyfile.
var sslOptions = map[string]string{
	"cert_file": "ipa-certfile",
	"key_file":  "ipa-keyfile",
}

// Override is one kernel parameter a configuration file sets.
type Override struct {
	Param  string // goipa's (IPA's kernel) parameter name
	Value  string
	File   string // where it came from
	Option string // [section] option as written
}

// Ignored is an option goipa does not use; it is logged, never fatal.
type Ignored struct {
	File    string
	Section string
	Option  string
}

// ConfigFile is one parsed file, named for the log.
type ConfigFile struct {
	Name string
	INI  INI
}

// Overrides turns configuration files, in the order oslo.config reads
// them (later files win), into kernel parameter overrides: the result
// holds one entry per parameter, the last file's value. cmdline is the
// kernel command line's own parameters: as in IPA, a kernel ipa-debug
// wins over a file's debug (IPA sets it as an override after reading
// the files).
func Overrides(files []ConfigFile, cmdline map[string]string) ([]Override, []Ignored) {
	byParam := map[string]Override{}
	var ignored []Ignored
	for _, f := range files {
		sections := make([]string, 0, len(f.INI))
		for s := range f.INI {
			sections = append(sections, s)
		}
		sort.Strings(sections)
		for _, s := range sections {
			opts := f.INI[s]
			keys := make([]string, 0, len(opts))
			for k := range opts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				var table map[string]string
				switch s {
				case "DEFAULT":
					table = ipaOptions
				case "ssl":
					table = sslOptions
				}
				p, ok := table[k]
				if !ok {
					ignored = append(ignored, Ignored{File: f.Name, Section: s, Option: k})
					continue
				}
				if p == "ipa-debug" {
					if _, onCmdline := cmdline["ipa-debug"]; onCmdline {
						continue
					}
				}
				byParam[p] = Override{Param: p, Value: unquote(opts[k]), File: f.Name, Option: "[" + s + "] " + k}
			}
		}
	}
	out := make([]Override, 0, len(byParam))
	for _, o := range byParam {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Param < out[j].Param })
	return out, ignored
}

// unquote drops one pair of matching quotes around a value, as oslo's
// iniparser does.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return strings.TrimSpace(v)
}

// Flags renders overrides as the command-line flags goipa's
// configuration reads after the kernel command line (flags win).
func Flags(ovs []Override) []string {
	out := make([]string, 0, len(ovs))
	for _, o := range ovs {
		out = append(out, "--"+o.Param+"="+o.Value)
	}
	return out
}

// Parameters lists every kernel parameter a configuration file can set.
func Parameters() []string {
	seen := map[string]bool{}
	for _, p := range ipaOptions {
		seen[p] = true
	}
	for _, p := range sslOptions {
		seen[p] = true
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
