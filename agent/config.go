package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/goipa/goipa/kernelparams"
)

// Config is the agent's whole configuration, parsed once from the kernel
// command line and command-line flags of the same names (flags win).
// Parameter names and defaults are IPA's (spec section 8); goipa-* are ours.
type Config struct {
	// Talking to Ironic.
	APIURLs          []string      // ipa-api-url (comma list, tried in order)
	GlobalRequestID  string        // ipa-global-request-id
	LookupTimeout    time.Duration // ipa-lookup-timeout: after it, lookup failures log louder (it never gives up)
	LookupInterval   time.Duration // ipa-lookup-interval: the first backoff
	IronicAPIVersion string        // ipa-ironic-api-version: skip discovery when set
	HTTPTimeout      time.Duration // ipa-http-request-timeout
	Insecure         bool          // ipa-insecure: do not verify Ironic's certificate
	AgentToken       string        // ipa-agent-token (virtual media pre-generates it)
	TokenRequired    bool          // ipa-agent-token-required
	UseMDNS          bool          // ipa-use-mdns: without ipa-api-url, find Ironic by mDNS
	APIFromMDNS      bool          // ipa-api-url=mdns: find Ironic by mDNS (required)
	// ipa-mdns-allowed-overrides: the settings (IPA's names without
	// "ipa_") an mDNS TXT record may change: IPA's [mdns] allowed_overrides.
	MDNSAllowedOverrides []string
	Standalone           bool // ipa-standalone: no lookup, no heartbeat

	// The agent's own API.
	ListenHost        string        // ipa-listen-host
	ListenPort        int           // ipa-listen-port
	AdvertiseHost     string        // ipa-advertise-host (auto when empty)
	AdvertisePort     int           // ipa-advertise-port (defaults to the listen port)
	AdvertiseProtocol string        // ipa-advertise-protocol
	NetworkInterface  string        // ipa-network-interface
	IPLookupAttempts  int           // ipa-ip-lookup-attempts
	IPLookupTimeout   time.Duration // ipa-ip-lookup-timeout (between attempts)

	// TLS.
	EnableAutoTLS  bool   // ipa-enable-auto-tls
	ListenTLS      bool   // ipa-listen-tls: serve HTTPS with CertFile/KeyFile
	CertFile       string // ipa-certfile
	KeyFile        string // ipa-keyfile
	CAFile         string // ipa-cafile: CA bundle for Ironic's certificate
	TLSMinVersion  string // ipa-tls-min-version
	TLSCipherSuite string // ipa-tls-cipher-suites
	TLSCurve       string // ipa-tls-certificate-curve

	// Network setup (used by `goipa init`).
	BootIF               string        // BOOTIF
	BootMethod           string        // boot_method
	KernelIP             string        // ip= (the kernel's static configuration)
	EnableVLANInterfaces string        // ipa-enable-vlan-interfaces
	CollectLLDP          bool          // ipa-collect-lldp
	LLDPTimeout          time.Duration // ipa-lldp-timeout

	// Inspection.
	InspectionCallbackURL       string        // ipa-inspection-callback-url
	InspectionFromMDNS          bool          // ipa-inspection-callback-url=mdns: find the inspector by mDNS
	InspectionCollectors        []string      // ipa-inspection-collectors
	InspectionDHCPWaitTimeout   time.Duration // ipa-inspection-dhcp-wait-timeout
	InspectionDHCPAllInterfaces bool          // ipa-inspection-dhcp-all-interfaces
	InspectionBenchmarks        []string      // ipa-inspection-benchmarks

	// Hardware and disks.
	HardwareInitDelay           time.Duration // ipa-hardware-initialization-delay
	DiskWaitAttempts            int           // ipa-disk-wait-attempts
	DiskWaitDelay               time.Duration // ipa-disk-wait-delay
	GuardSpecialFilesystems     bool          // ipa-guard-special-filesystems
	InjectFilesPriority         int           // ipa-inject-files-priority
	IgnoreBootloaderFailure     bool          // ipa-ignore-bootloader-failure
	EnableBIOSBootloaderInstall bool          // ipa-enable-bios-bootloader-install
	NTPServer                   string        // ipa-ntp-server
	Devices                     []string      // goipa-devices: the only block devices goipa may see
	EFIVars                     string        // goipa-efivars: efivarfs-like directory whose boot entries goipa manages
	ImageParallel               int           // goipa-image-download-parallel

	// Images.
	ImageConnectionTimeout time.Duration // ipa-image-download-connection-timeout
	ImageConnectionRetries int           // ipa-image-download-connection-retries
	ImageRetryInterval     time.Duration // ipa-image-download-connection-retry-interval
	ImageMaxDuration       time.Duration // ipa-image-download-max-duration (0 = none)

	// Debug login on the ramdisk (DIB's dynamic-login parameters; Metal3
	// passes IRONIC_RAMDISK_SSH_KEY as sshkey): only `goipa init` acts on
	// them (cmd/goipa), checked there so a bad value costs the login,
	// never the boot.
	SSHKey  string // sshkey: root's authorized key(s)
	RootPwd string // rootpwd: root's crypt hash

	// Process behaviour.
	Debug bool   // ipa-debug
	Power string // goipa-power: "simulated" or "system"

	// Ignored holds the parameters given that goipa parses but does not
	// act on (see ignoredParams), with their values: the agent logs them
	// once at start.
	Ignored map[string]string
}

// ignoredParams are parameters goipa accepts, as IPA does, without acting
// on them yet, and why: the agent says so once rather than seem to obey.
// (boot_method is acted on: goipa init reads the virtual CD with vmedia.)
var ignoredParams = map[string]string{}

// ConfigError names the parameter whose value is malformed.
type ConfigError = kernelparams.Error

// param is one row of params.
func param(name, def, usage string, set func(*Config, string) error) kernelparams.Param[Config] {
	return kernelparams.Param[Config]{Name: name, Default: def, Usage: usage, Set: set}
}

// params lists every parameter goipa knows. Defaults are IPA's (2023.1
// where the releases differ and the older value is the safer one).
var params = []kernelparams.Param[Config]{
	param("ipa-api-url", "", "Ironic API URL(s), comma separated, or mdns to find Ironic by multicast DNS", func(c *Config, v string) error {
		if strings.TrimSpace(v) == "mdns" {
			// As IPA: the literal "mdns" is the operator's explicit opt-in.
			c.APIFromMDNS, c.APIURLs = true, nil
			return nil
		}
		urls := kernelparams.SplitList(v)
		for _, u := range urls {
			if u == "mdns" {
				return errors.New(`"mdns" stands alone, not in a list of URLs`)
			}
			if err := kernelparams.CheckHTTPURL(u); err != nil {
				return err
			}
		}
		c.APIURLs = urls
		return nil
	}),
	param("ipa-global-request-id", "", "request id sent to Ironic", kernelparams.String(func(c *Config) *string { return &c.GlobalRequestID })),
	param("ipa-listen-host", "::", "address the API listens on", kernelparams.String(func(c *Config) *string { return &c.ListenHost })),
	param("ipa-listen-port", "9999", "port the API listens on", kernelparams.Port(func(c *Config) *int { return &c.ListenPort })),
	param("ipa-advertise-host", "", "address Ironic calls back (auto: source of the route to Ironic)", kernelparams.String(func(c *Config) *string { return &c.AdvertiseHost })),
	param("ipa-advertise-port", "", "port Ironic calls back (default: the listen port)", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		return kernelparams.Port(func(c *Config) *int { return &c.AdvertisePort })(c, v)
	}),
	param("ipa-advertise-protocol", "http", "http or https", func(c *Config, v string) error {
		if v != "http" && v != "https" {
			return errors.New("must be http or https")
		}
		c.AdvertiseProtocol = v
		return nil
	}),
	param("ipa-network-interface", "", "take the advertised address from this NIC", kernelparams.String(func(c *Config) *string { return &c.NetworkInterface })),
	param("ipa-ip-lookup-attempts", "6", "attempts to find the advertised address", kernelparams.Int(func(c *Config) *int { return &c.IPLookupAttempts }, 1)),
	param("ipa-ip-lookup-timeout", "10", "seconds between those attempts", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.IPLookupTimeout })),
	param("ipa-lookup-timeout", "600", "seconds after which lookup failures are logged as errors", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.LookupTimeout })),
	param("ipa-lookup-interval", "1", "first lookup backoff in seconds", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.LookupInterval })),
	param("ipa-ironic-api-version", "", "Ironic API version (skips discovery)", func(c *Config, v string) error {
		if v != "" {
			if _, err := parseMicroversion(v); err != nil {
				return err
			}
		}
		c.IronicAPIVersion = v
		return nil
	}),
	param("ipa-http-request-timeout", "30", "timeout of each request to Ironic in seconds", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.HTTPTimeout })),
	param("ipa-insecure", "0", "do not verify Ironic's TLS certificate", kernelparams.Bool(func(c *Config) *bool { return &c.Insecure })),
	param("ipa-agent-token", "", "agent token handed over by Ironic", kernelparams.String(func(c *Config) *string { return &c.AgentToken })),
	param("ipa-agent-token-required", "0", "require the agent token", kernelparams.Bool(func(c *Config) *bool { return &c.TokenRequired })),
	param("ipa-use-mdns", "0", "without ipa-api-url, find Ironic by multicast DNS (unauthenticated: trusted networks only)", kernelparams.Bool(func(c *Config) *bool { return &c.UseMDNS })),
	param("ipa-mdns-allowed-overrides", "inspection_callback_url,ntp_server", "settings (IPA names without ipa_) that mDNS TXT records may override, as IPA's [mdns] allowed_overrides", kernelparams.List(func(c *Config) *[]string { return &c.MDNSAllowedOverrides })),
	param("ipa-standalone", "0", "no lookup and no heartbeat: serve the API at once", kernelparams.Bool(func(c *Config) *bool { return &c.Standalone })),
	param("ipa-enable-auto-tls", "1", "generate a certificate when Ironic supports it", kernelparams.Bool(func(c *Config) *bool { return &c.EnableAutoTLS })),
	param("ipa-listen-tls", "0", "serve HTTPS with ipa-certfile/ipa-keyfile", kernelparams.Bool(func(c *Config) *bool { return &c.ListenTLS })),
	param("ipa-certfile", "", "TLS certificate (server with ipa-listen-tls, client otherwise)", kernelparams.String(func(c *Config) *string { return &c.CertFile })),
	param("ipa-keyfile", "", "TLS key for ipa-certfile", kernelparams.String(func(c *Config) *string { return &c.KeyFile })),
	param("ipa-cafile", "", "CA bundle to verify Ironic", kernelparams.String(func(c *Config) *string { return &c.CAFile })),
	param("ipa-tls-min-version", "1.2", "lowest TLS version served (1.2 or 1.3)", func(c *Config, v string) error {
		if v != "1.2" && v != "1.3" {
			return errors.New("must be 1.2 or 1.3")
		}
		c.TLSMinVersion = v
		return nil
	}),
	param("ipa-tls-cipher-suites", "", "TLS 1.2 cipher suites (OpenSSL names)", kernelparams.String(func(c *Config) *string { return &c.TLSCipherSuite })),
	param("ipa-tls-certificate-curve", "p256", "curve of the auto-TLS key: p256, p384 or p521", func(c *Config, v string) error {
		switch v {
		case "p256", "p384", "p521":
			c.TLSCurve = v
			return nil
		}
		return errors.New("must be p256, p384 or p521")
	}),
	param("BOOTIF", "", "MAC of the boot NIC (PXE)", kernelparams.String(func(c *Config) *string { return &c.BootIF })),
	param("boot_method", "", "how the ramdisk booted (vmedia)", kernelparams.String(func(c *Config) *string { return &c.BootMethod })),
	param("ip", "", "the kernel's static network configuration", kernelparams.String(func(c *Config) *string { return &c.KernelIP })),
	param("ipa-enable-vlan-interfaces", "", "VLAN interfaces to create", kernelparams.String(func(c *Config) *string { return &c.EnableVLANInterfaces })),
	param("ipa-collect-lldp", "0", "collect LLDP for the inventory", kernelparams.Bool(func(c *Config) *bool { return &c.CollectLLDP })),
	param("ipa-lldp-timeout", "30", "seconds to listen for LLDP", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.LLDPTimeout })),
	param("ipa-inspection-callback-url", "", "inspection callback URL", func(c *Config, v string) error {
		c.InspectionFromMDNS = v == "mdns"
		if v == "mdns" {
			c.InspectionCallbackURL = ""
			return nil
		}
		if v != "" {
			if err := kernelparams.CheckHTTPURL(v); err != nil {
				return err
			}
		}
		c.InspectionCallbackURL = v
		return nil
	}),
	param("ipa-inspection-collectors", "default,logs", "inspection collectors", kernelparams.List(func(c *Config) *[]string { return &c.InspectionCollectors })),
	param("ipa-inspection-dhcp-wait-timeout", "60", "seconds to wait for DHCP before inspection", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.InspectionDHCPWaitTimeout })),
	param("ipa-inspection-dhcp-all-interfaces", "0", "wait for DHCP on all NICs", kernelparams.Bool(func(c *Config) *bool { return &c.InspectionDHCPAllInterfaces })),
	param("ipa-inspection-benchmarks", "", "inspection benchmarks", kernelparams.List(func(c *Config) *[]string { return &c.InspectionBenchmarks })),
	param("ipa-hardware-initialization-delay", "0", "seconds to wait before looking at hardware", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.HardwareInitDelay })),
	param("ipa-disk-wait-attempts", "10", "attempts to find the root disk", kernelparams.Int(func(c *Config) *int { return &c.DiskWaitAttempts }, 0)),
	param("ipa-disk-wait-delay", "3", "seconds between those attempts", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.DiskWaitDelay })),
	param("ipa-guard-special-filesystems", "1", "refuse to erase GPFS/VMFS/gfs2 devices", kernelparams.Bool(func(c *Config) *bool { return &c.GuardSpecialFilesystems })),
	param("ipa-inject-files-priority", "0", "priority of the inject_files deploy step", func(c *Config, v string) error {
		if err := kernelparams.Int(func(c *Config) *int { return &c.InjectFilesPriority }, 0)(c, v); err != nil {
			return err
		}
		if c.InjectFilesPriority > 99 {
			return errors.New("must be at most 99")
		}
		return nil
	}),
	param("ipa-ignore-bootloader-failure", "0", "do not fail a deploy on bootloader errors", kernelparams.Bool(func(c *Config) *bool { return &c.IgnoreBootloaderFailure })),
	param("ipa-enable-bios-bootloader-install", "0", "run the image's own grub-install in a chroot for partition images (off by default, as in IPA, since it runs the image's code as root)", kernelparams.Bool(func(c *Config) *bool { return &c.EnableBIOSBootloaderInstall })),
	param("ipa-ntp-server", "", "NTP server to sync the clock from", kernelparams.String(func(c *Config) *string { return &c.NTPServer })),
	param("ipa-image-download-connection-timeout", "60", "image download connect/read timeout in seconds", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.ImageConnectionTimeout })),
	param("ipa-image-download-connection-retries", "9", "image download retries", kernelparams.Int(func(c *Config) *int { return &c.ImageConnectionRetries }, 0)),
	param("ipa-image-download-connection-retry-interval", "10", "seconds between image download retries", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.ImageRetryInterval })),
	param("ipa-image-download-max-duration", "0", "longest image download in seconds (0 = no limit)", kernelparams.Seconds(func(c *Config) *time.Duration { return &c.ImageMaxDuration })),
	param("sshkey", "", "SSH public key(s) that log in as root on port 22 (ramdisk only; quote it on the kernel command line)", kernelparams.String(func(c *Config) *string { return &c.SSHKey })),
	param("rootpwd", "", "crypt hash ($5$ or $6$) of a password that logs in as root on port 22 (ramdisk only)", kernelparams.String(func(c *Config) *string { return &c.RootPwd })),
	param("ipa-debug", "0", "debug logging", kernelparams.Bool(func(c *Config) *bool { return &c.Debug })),
	param("goipa-devices", "", "the only block devices goipa may see, comma separated", func(c *Config, v string) error {
		devs := kernelparams.SplitList(v)
		for _, d := range devs {
			if !strings.HasPrefix(d, "/dev/") {
				return fmt.Errorf("%q is not a /dev path", d)
			}
		}
		c.Devices = devs
		return nil
	}),
	param("goipa-image-download-parallel", "4", "range requests that fetch a large image at once from a server that serves ranges (1: one stream)", kernelparams.Int(func(c *Config) *int { return &c.ImageParallel }, 1)),
	param("goipa-efivars", "", "directory laid out like efivarfs where install_bootloader writes boot entries, as on a UEFI-booted ramdisk (default: efivarfs under init or goipa-power=system, simulated otherwise)", kernelparams.String(func(c *Config) *string { return &c.EFIVars })),
	param("goipa-power", "simulated", "power commands: simulated (log and re-lookup) or system (reboot(2))", func(c *Config, v string) error {
		if v != "simulated" && v != "system" {
			return errors.New("must be simulated or system")
		}
		c.Power = v
		return nil
	}),
}

// ParseConfig builds the Config from a kernel command line and then
// command-line flags of the same names, which win. Unknown kernel
// parameters are ignored; a malformed known one is a *ConfigError.
func ParseConfig(cmdline string, args []string) (*Config, error) {
	c := &Config{}
	values, err := kernelparams.Parse(params, c, cmdline, args)
	if err != nil {
		return nil, err
	}
	for name := range ignoredParams {
		if v := values[name]; strings.TrimSpace(v) != "" {
			if c.Ignored == nil {
				c.Ignored = map[string]string{}
			}
			c.Ignored[name] = v
		}
	}
	if c.AdvertisePort == 0 {
		c.AdvertisePort = c.ListenPort
	}
	if c.ListenTLS && (c.CertFile == "" || c.KeyFile == "") {
		return nil, &ConfigError{Param: "ipa-listen-tls", Value: values["ipa-listen-tls"], Err: errors.New("needs ipa-certfile and ipa-keyfile")}
	}
	if !c.Standalone && len(c.APIURLs) == 0 && !c.APIFromMDNS && !c.UseMDNS && c.InspectionCallbackURL == "" && !c.InspectionFromMDNS {
		return nil, &ConfigError{Param: "ipa-api-url", Err: errors.New("no Ironic API URL given (or set ipa-standalone=1)")}
	}
	return c, nil
}

// Override sets the parameter name (IPA's kernel name, e.g. ipa-debug)
// to value after parsing, as mDNS TXT records do. Settings read once at
// start keep their first value; the caller says which take effect.
func (c *Config) Override(name, value string) error {
	return kernelparams.Set(params, c, name, value)
}

// LoadConfig reads the kernel command line from path (usually
// /proc/cmdline) and applies args over it.
func LoadConfig(path string, args []string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel command line: %w", err)
	}
	return ParseConfig(string(b), args)
}

// PrintDefaults writes every parameter, its default and meaning.
func PrintDefaults(w io.Writer) { kernelparams.PrintDefaults(w, params) }
