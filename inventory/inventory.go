package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jaypipes/ghw"
)

// Inventory is IPA's inventory (spec 6.1), plus goipa's own keys, named
// so that they never collide with Ironic's.
type Inventory struct {
	Interfaces   []Interface  `json:"interfaces"`
	CPU          CPU          `json:"cpu"`
	Disks        []Disk       `json:"disks"`
	Memory       Memory       `json:"memory"`
	BMCAddress   *string      `json:"bmc_address"`
	BMCV6Address *string      `json:"bmc_v6address"`
	BMCMAC       *string      `json:"bmc_mac,omitempty"`
	SystemVendor SystemVendor `json:"system_vendor"`
	Boot         Boot         `json:"boot"`
	Hostname     string       `json:"hostname"`
	// Accelerators is goipa's addition (GPUs and other PCI accelerators).
	Accelerators []Accelerator `json:"goipa_accelerators"`
	// BMC is goipa's addition: the BMC's identity and firmware (IPMI Get
	// Device ID), null without an IPMI device.
	BMC *BMC `json:"goipa_bmc"`
}

// Interface is one NIC.
type Interface struct {
	Name        string    `json:"name"`
	MACAddress  string    `json:"mac_address"`
	IPv4Address *string   `json:"ipv4_address"`
	IPv6Address *string   `json:"ipv6_address"`
	HasCarrier  bool      `json:"has_carrier"`
	LLDP        []LLDPTLV `json:"lldp"`
	Vendor      *string   `json:"vendor"`
	Product     *string   `json:"product"`
	ClientID    *string   `json:"client_id"`
	BiosDevName *string   `json:"biosdevname"`
	SpeedMbps   *int      `json:"speed_mbps"`
	PCIAddress  *string   `json:"pci_address"`
	Driver      *string   `json:"driver"`
	PXEEnabled  bool      `json:"pxe_enabled"`
	// FirmwareVersion is goipa's addition: the NIC's firmware (ethtool).
	FirmwareVersion string `json:"goipa_firmware_version,omitempty"`
}

// LLDPTLV is one LLDP TLV; it marshals as IPA's [type, "hex"] pair.
type LLDPTLV struct {
	Type  int
	Value []byte
}

// MarshalJSON renders the pair.
func (t LLDPTLV) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("[%d, %q]", t.Type, fmt.Sprintf("%x", t.Value))), nil
}

// CPU is the processor summary.
type CPU struct {
	ModelName    string   `json:"model_name"`
	Frequency    string   `json:"frequency"`
	Count        int      `json:"count"`
	Architecture string   `json:"architecture"`
	Flags        []string `json:"flags"`
	SocketCount  int      `json:"socket_count"`
}

// Memory is total RAM.
type Memory struct {
	Total      int64 `json:"total"`
	PhysicalMB int64 `json:"physical_mb"`
}

// Firmware is the system firmware.
type Firmware struct {
	Vendor    string `json:"vendor"`
	Version   string `json:"version"`
	BuildDate string `json:"build_date"`
}

// SystemVendor is the DMI system identity.
type SystemVendor struct {
	ProductName  string   `json:"product_name"`
	SerialNumber string   `json:"serial_number"`
	Manufacturer string   `json:"manufacturer"`
	Firmware     Firmware `json:"firmware"`
}

// Boot says how the machine booted.
type Boot struct {
	CurrentBootMode string  `json:"current_boot_mode"`
	PXEInterface    *string `json:"pxe_interface"`
}

// Option configures collection.
type Option func(*options)

type options struct {
	devices []string
	bootif  string
	skipBMC bool
	lldp    func(string) []LLDPTLV
	heard   func(string) []LLDPTLV
	sysRoot string // "/" normally; a snapshot in tests
	log     *slog.Logger
	// benchmarks are ipa-inspection-benchmarks (cpu, disk, mem), run by
	// the extra-hardware collector; benchTime scales their durations.
	benchmarks []string
	benchTime  time.Duration
}

func newOptions(opts []Option) *options {
	o := &options{sysRoot: "/", log: slog.Default()}
	for _, f := range opts {
		f(o)
	}
	return o
}

// WithDevices restricts every device list to exactly these paths, loop
// devices included (goipa-devices). Empty means IPA's rules.
func WithDevices(paths []string) Option { return func(o *options) { o.devices = paths } }

// WithBootIF names the PXE NIC (the raw BOOTIF parameter).
func WithBootIF(bootif string) Option { return func(o *options) { o.bootif = bootif } }

// WithSkipBMC reports no BMC addresses (lookup's agent_skip_bmc_detect).
func WithSkipBMC(skip bool) Option { return func(o *options) { o.skipBMC = skip } }

// WithLLDP supplies the LLDP TLVs seen on each interface.
func WithLLDP(f func(ifname string) []LLDPTLV) Option { return func(o *options) { o.lldp = f } }

// WithHeardLLDP gives the lldp collector what was heard on each NIC. IPA's
// collector listens whatever ipa-collect-lldp says, which only decides
// whether the inventory's interfaces carry it; without this option the
// collector reports the inventory's.
func WithHeardLLDP(f func(ifname string) []LLDPTLV) Option {
	return func(o *options) { o.heard = f }
}

// WithRoot reads /sys, /proc, /run and /dev under root (a snapshot).
func WithRoot(root string) Option { return func(o *options) { o.sysRoot = root } }

// WithBenchmarks names the benchmarks the extra-hardware collector runs
// (ipa-inspection-benchmarks: cpu, disk, mem; IPA runs none by default).
func WithBenchmarks(names []string) Option { return func(o *options) { o.benchmarks = names } }

// WithBenchmarkTime sets how long each benchmark run measures; the
// default is the hardware package's (10 s for cpu and disk runs, 5 s for
// each memory block size).
func WithBenchmarkTime(d time.Duration) Option { return func(o *options) { o.benchTime = d } }

// WithLogger logs what could not be read.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func (o *options) path(p string) string { return filepath.Join(o.sysRoot, p) }

// Collect gathers the inventory. It never fails as a whole because a part
// could not be read: the gap is logged and the rest returned.
func Collect(ctx context.Context, opts ...Option) (*Inventory, error) {
	o := newOptions(opts)
	inv := &Inventory{}
	var err error
	if inv.Interfaces, err = interfaces(ctx, o); err != nil {
		o.log.Warn("inventory: interfaces", "error", err)
	}
	if inv.Interfaces == nil {
		inv.Interfaces = []Interface{}
	}
	if inv.Disks, err = blockDevices(ctx, o); err != nil {
		o.log.Warn("inventory: disks", "error", err)
	}
	if inv.Disks == nil {
		inv.Disks = []Disk{}
	}
	addNVMeFirmware(ctx, o, inv.Disks)
	inv.CPU = collectCPU(o)
	inv.Memory = collectMemory(o)
	inv.SystemVendor = collectVendor(o)
	inv.Boot.CurrentBootMode = "bios"
	if _, err := os.Stat(o.path("sys/firmware/efi")); err == nil {
		inv.Boot.CurrentBootMode = "uefi"
	}
	if o.bootif != "" {
		b := o.bootif
		inv.Boot.PXEInterface = &b
	}
	inv.Hostname, _ = os.Hostname()
	inv.Accelerators = accelerators(o)
	// Without an IPMI device, or when lookup said agent_skip_bmc_detect,
	// the addresses stay null as IPA reports them.
	if !o.skipBMC {
		collectBMC(ctx, inv, o)
	}
	return inv, ctx.Err()
}

func ghwOpts(o *options) []any {
	return []any{ghw.WithChroot(o.sysRoot), ghw.WithDisableWarnings()}
}

func collectCPU(o *options) CPU {
	c := CPU{Architecture: machineArch(), Flags: []string{}}
	info, err := ghw.CPU(ghwOpts(o)...)
	if err != nil {
		o.log.Warn("inventory: cpu", "error", err)
		return c
	}
	c.Count = int(info.TotalHardwareThreads)
	if c.Count == 0 {
		c.Count = int(info.TotalThreads)
	}
	c.SocketCount = len(info.Processors)
	if len(info.Processors) > 0 {
		c.ModelName = info.Processors[0].Model
	}
	// lscpu's Flags: the first processor's line as the kernel wrote it,
	// which IPA splits on runs of blanks (ghw splits on single spaces and
	// leaves empty flags where the kernel pads).
	cpuinfo, _ := os.ReadFile(o.path("proc/cpuinfo"))
	first := firstProcessor(parseCPUInfo(string(cpuinfo)))
	if fl := strings.Fields(firstOf(first["flags"], first["features"])); len(fl) > 0 {
		c.Flags = fl
	}
	if c.ModelName == "" {
		// arm64: no "model name" line; name the core from its MIDR as
		// lscpu (IPA's source) does.
		c.ModelName = armModelName(string(cpuinfo))
	}
	c.Frequency = cpuFrequency(o)
	return c
}

// cpuFrequency is IPA's: lscpu's "CPU max MHz" (the highest cpufreq
// limit over the CPUs, printed with four decimals), else its "CPU MHz",
// which the util-linux that IPA's ramdisks carry (2.37 and later) no
// longer prints: without cpufreq (virtual machines) IPA reports "".
func cpuFrequency(o *options) string {
	cpus := parseCPUList(readTrim(o.path("sys/devices/system/cpu/present")))
	if len(cpus) == 0 {
		cpus = []int{0}
	}
	if _, maxMHz := cpuFreqRange(o, cpus); maxMHz > 0 {
		return fmt.Sprintf("%.4f", maxMHz)
	}
	return ""
}

func collectMemory(o *options) Memory {
	var m Memory
	info, err := ghw.Memory(ghwOpts(o)...)
	if err != nil {
		o.log.Warn("inventory: memory", "error", err)
		return m
	}
	m.Total = info.TotalUsableBytes
	phys := info.TotalPhysicalBytes
	if phys <= 0 {
		phys = m.Total
	}
	// IPA sums the DIMMs; without DMI, round the kernel's figure up to
	// a whole GiB the way installed memory comes.
	if dimms := dimmBytes(o); dimms > 0 {
		m.PhysicalMB = dimms >> 20
		return m
	}
	m.PhysicalMB = phys >> 20
	if info.TotalPhysicalBytes <= 0 || info.TotalPhysicalBytes == info.TotalUsableBytes {
		m.PhysicalMB = int64(math.Ceil(float64(phys)/float64(1<<30))) * 1024
	}
	return m
}

func collectVendor(o *options) SystemVendor {
	var v SystemVendor
	if p, err := ghw.Product(ghwOpts(o)...); err == nil {
		// lshw (IPA's source) names the system by its product and, when
		// the firmware gives one, its SKU in parentheses.
		v.ProductName = lshwProduct(unknownEmpty(p.Name), unknownEmpty(p.SKU))
		v.SerialNumber, v.Manufacturer = unknownEmpty(p.SerialNumber), unknownEmpty(p.Vendor)
	} else {
		o.log.Debug("inventory: product", "error", err)
	}
	if b, err := ghw.BIOS(ghwOpts(o)...); err == nil {
		v.Firmware = Firmware{Vendor: unknownEmpty(b.Vendor), Version: unknownEmpty(b.Version), BuildDate: unknownEmpty(b.Date)}
	}
	if v.ProductName == "" || v.SerialNumber == "" || v.Manufacturer == "" {
		deviceTreeVendor(o, &v)
	}
	return v
}

// unknownEmpty maps ghw's "unknown" to IPA's "".
func unknownEmpty(s string) string {
	if strings.EqualFold(s, "unknown") {
		return ""
	}
	return s
}
