package inventory

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/u-root/u-root/pkg/smbios"
	"golang.org/x/sys/unix"
)

// ExtraHardware is the extra-hardware collector's data: what
// hardware-detect prints, read in Go. Categories: disk, system,
// firmware, memory, network, cpu, numa, ipmi (where a BMC answers).
// With WithBenchmarks, the named benchmarks add their figures.
func ExtraHardware(ctx context.Context, opts ...Option) []HardwareFact {
	o := newOptions(opts)
	var f facts
	// hardware-detect's order: disks, then system (lshw: system,
	// firmware, memory, network; lscpu: cpu, numa; the kernel), then IPMI.
	diskFacts(ctx, &f, o)
	dmi := readSMBIOS(o)
	systemFacts(&f, o, dmi)
	memoryFacts(&f, o, dmi)
	networkFacts(ctx, &f, o)
	cpuFacts(&f, o)
	kernelFacts(&f, o)
	if !o.skipBMC {
		ipmiExtraFacts(ctx, &f, o)
	}
	rtcFacts(&f, o)
	auxvFacts(&f, o)
	if len(o.benchmarks) > 0 {
		runBenchmarks(ctx, &f, o)
	}
	if f.list == nil {
		return []HardwareFact{}
	}
	return f.list
}

func readSMBIOS(o *options) *smbios.Info {
	entry, err := os.ReadFile(o.path("sys/firmware/dmi/tables/smbios_entry_point"))
	if err != nil {
		return nil
	}
	table, err := os.ReadFile(o.path("sys/firmware/dmi/tables/DMI"))
	if err != nil {
		return nil
	}
	info, err := smbios.ParseInfo(entry, table)
	if err != nil {
		o.log.Debug("extra-hardware: SMBIOS", "error", err)
		return nil
	}
	return info
}

// hardwareDiskName is diskinfo's disknames rule: sd*, hd*, vd*, nvme*.
func hardwareDiskName(k string) bool {
	return (len(k) > 1 && k[1] == 'd' && strings.ContainsRune("shv", rune(k[0]))) || strings.HasPrefix(k, "nvme")
}

// extraDiskNames lists the disks as diskinfo does, or exactly the
// goipa-devices ones.
func extraDiskNames(o *options) []string {
	var names []string
	if len(o.devices) > 0 {
		for _, p := range o.devices {
			if k, err := kernelName(o, p); err == nil {
				names = append(names, k)
			}
		}
		return names
	}
	entries, _ := os.ReadDir(o.path("sys/block"))
	for _, e := range entries {
		if hardwareDiskName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

var schedulerRe = regexp.MustCompile(`\[(.*?)\]`)

func diskFacts(ctx context.Context, f *facts, o *options) {
	type disk struct {
		name string
		gb   int64
	}
	var disks []disk
	for _, k := range extraDiskNames(o) {
		sectors, err := strconv.ParseInt(readTrim(o.path(filepath.Join("sys/block", k, "size"))), 10, 64)
		if err != nil {
			continue
		}
		if gb := sizeInGB(sectors); gb > 0 {
			disks = append(disks, disk{k, gb})
		}
	}
	f.add("disk", "logical", "count", strconv.Itoa(len(disks)))
	for _, d := range disks {
		if ctx.Err() != nil {
			return
		}
		base := o.path(filepath.Join("sys/block", d.name))
		f.add("disk", d.name, "size", strconv.FormatInt(d.gb, 10))
		for _, info := range []string{"device/vendor", "device/model", "device/rev", "queue/optimal_io_size",
			"queue/physical_block_size", "queue/rotational", "queue/nr_requests"} {
			p := filepath.Join(base, info)
			// diskinfo's fallbacks: "rev" may be "revision", and NVMe
			// namespaces keep some attributes one device further down.
			if _, err := os.Stat(p); err != nil && info == "device/rev" {
				info = "device/revision"
			}
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(base, "device", info)
			}
			if b, err := os.ReadFile(p); err == nil {
				line, _, _ := strings.Cut(string(b), "\n")
				f.add("disk", d.name, strings.SplitN(info, "/", 2)[1], strings.TrimSpace(line))
			}
		}
		if m := schedulerRe.FindStringSubmatch(readTrim(filepath.Join(base, "queue/scheduler"))); m != nil {
			f.add("disk", d.name, "scheduler", m[1])
		}
		if !strings.HasPrefix(d.name, "nvme") {
			diskCacheFacts(f, base, d.name)
		}
		diskIDFacts(f, o, d.name)
		if strings.HasPrefix(d.name, "sd") && o.sysRoot == "/" && readTrim(filepath.Join(base, "device/vendor")) != "ATA" {
			// A SCSI (SAS, virtual) disk: read_smart_scsi keeps the
			// INQUIRY identity smartctl prints first, which sysfs holds.
			// Its health and error-counter log pages are not read.
			f.addStr("disk", d.name, "SMART/vendor", readTrim(filepath.Join(base, "device/vendor")))
			f.addStr("disk", d.name, "SMART/product", readTrim(filepath.Join(base, "device/model")))
		}
		if o.sysRoot == "/" && readTrim(filepath.Join(base, "device/vendor")) == "ATA" {
			// SATA behind libata or a SAS HBA's translation: smartctl's
			// ATA table.
			id, data, thresh, err := readATASMART("/dev/" + d.name)
			if err != nil {
				o.log.Debug("extra-hardware: ATA SMART", "disk", d.name, "error", err)
				continue
			}
			for _, kv := range append(ataIdentityFacts(id), ataSMARTAttrFacts(data, thresh)...) {
				f.add("disk", d.name, kv[0], kv[1])
			}
		}
		if strings.HasPrefix(d.name, "nvme") && o.sysRoot == "/" {
			id, health, err := readNVMeSMART("/dev/" + d.name)
			if err != nil {
				o.log.Debug("extra-hardware: NVMe SMART", "disk", d.name, "error", err)
				continue
			}
			for _, kv := range nvmeSMARTFacts(id, health) {
				f.add("disk", d.name, kv[0], kv[1])
			}
		}
	}
}

// diskCacheFacts is get_disk_cache: the SCSI disk's cache_type as WCE
// and RCD bits.
func diskCacheFacts(f *facts, base, name string) {
	link, err := os.Readlink(filepath.Join(base, "device"))
	if err != nil {
		return
	}
	ct := readTrim(filepath.Join(base, "device/scsi_disk", filepath.Base(link), "cache_type"))
	if ct == "" {
		return
	}
	wce, rcd := "1", "0"
	switch {
	case ct == "write through":
		wce = "0"
	case ct == "none":
		wce, rcd = "0", "1"
	case strings.Contains(ct, "daft"):
		rcd = "1"
	}
	f.add("disk", name, "Write Cache Enable", wce)
	f.add("disk", name, "Read Cache Disable", rcd)
}

// diskIDFacts is get_disk_id: udev's /dev/disk/by-id links to the disk.
func diskIDFacts(f *facts, o *options, name string) {
	dir := o.path("dev/disk/by-id")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || filepath.Base(t) != name {
			continue
		}
		key := "id"
		switch {
		case strings.HasPrefix(e.Name(), "wwn"):
			key = "wwn-id"
		case strings.HasPrefix(e.Name(), "scsi"):
			key = "scsi-id"
		}
		f.add("disk", name, key, e.Name())
	}
}

// systemFacts is lshw's system, motherboard and firmware (BIOS) nodes,
// with dmidecode's UUID and fix_bad_serial.
func systemFacts(f *facts, o *options, dmi *smbios.Info) {
	if dmi == nil {
		return
	}
	var uuid string
	if si, err := dmi.GetSystemInfo(); err == nil {
		f.addStr("system", "product", "serial", dmiStr(si.SerialNumber))
		f.addStr("system", "product", "name", lshwProduct(dmiStr(si.ProductName), dmiStr(si.SKUNumber)))
		f.addStr("system", "product", "vendor", dmiStr(si.Manufacturer))
		f.addStr("system", "product", "version", dmiStr(si.Version))
		// dmidecode prints the UUID in capitals; its placeholders read
		// "Not Settable"/"Not Present", whose first word the hardware
		// package drops.
		if u := si.UUID.String(); !strings.HasPrefix(u, "Not ") {
			uuid = strings.ToUpper(u)
			f.add("system", "product", "uuid", uuid)
		}
	}
	var moboSerial string
	if bbs, err := dmi.GetBaseboardInfo(); err == nil && len(bbs) > 0 {
		b := bbs[0]
		f.addStr("system", "motherboard", "name", dmiStr(b.Product))
		f.addStr("system", "motherboard", "vendor", dmiStr(b.Manufacturer))
		f.addStr("system", "motherboard", "version", dmiStr(b.Version))
		f.addStr("system", "motherboard", "serial", dmiStr(b.SerialNumber))
		moboSerial = dmiStr(b.SerialNumber)
	}
	if bi, err := dmi.GetBIOSInfo(); err == nil {
		f.addStr("firmware", "bios", "version", dmiStr(bi.Version))
		f.addStr("firmware", "bios", "date", dmiStr(bi.ReleaseDate))
		f.addStr("firmware", "bios", "vendor", dmiStr(bi.Vendor))
	}
	// fix_bad_serial: TYAN and Supermicro boards give a fake serial.
	k := [3]string{"system", "product", "serial"}
	if i, ok := f.index[k]; ok {
		if s := f.list[i].Value.(string); s == "0123456789" || s == "0000000000" {
			nic := ""
			if ifs, err := interfaces(context.Background(), o); err == nil && len(ifs) > 0 {
				nic = strings.ReplaceAll(ifs[0].MACAddress, ":", "")
			}
			if n := firstOf(uuid, moboSerial, nic); n != "" {
				f.list[i].Value = n
			}
		}
	}
}

// dmiStr maps u-root's wording of an absent SMBIOS string (index 0,
// which dmidecode prints "Not Specified") to the nothing lshw reports.
func dmiStr(s string) string {
	if s = strings.TrimSpace(s); s == "Not Specified" {
		return ""
	}
	return s
}

// lshwProduct is how lshw names the system: the product, then its SKU
// in parentheses when the firmware gives one. IPA's product_name is
// this too.
func lshwProduct(name, sku string) string {
	name, sku = strings.TrimSpace(name), strings.TrimSpace(sku)
	if sku == "" {
		return name
	}
	return name + " (" + sku + ")"
}

// memoryFacts is lshw's memory banks (SMBIOS type 17) and their total.
func memoryFacts(f *facts, o *options, dmi *smbios.Info) {
	if dmi == nil {
		return
	}
	devs, err := dmi.GetMemoryDevices()
	if err != nil || len(devs) == 0 {
		return
	}
	// lshw numbers the banks within each memory array; with several
	// arrays (memory:0, memory:1) the array's number joins the name.
	arrays := map[uint16]int{}
	var order []uint16
	for _, d := range devs {
		if _, ok := arrays[d.PhysicalMemoryArrayHandle]; !ok {
			arrays[d.PhysicalMemoryArrayHandle] = len(order)
			order = append(order, d.PhysicalMemoryArrayHandle)
		}
	}
	type bank struct {
		name string
		d    *smbios.MemoryDevice
	}
	var banks []bank
	perArray := map[uint16]int{}
	for _, d := range devs {
		n := perArray[d.PhysicalMemoryArrayHandle]
		perArray[d.PhysicalMemoryArrayHandle]++
		name := fmt.Sprintf("bank:%d", n)
		if len(order) > 1 {
			name = fmt.Sprintf("bank:%d:%d", arrays[d.PhysicalMemoryArrayHandle], n)
		}
		banks = append(banks, bank{name, d})
	}
	var total uint64
	for _, b := range banks {
		if b.d.Size != 0xffff {
			total += b.d.GetSizeBytes()
		}
	}
	if total > 0 {
		f.add("memory", "total", "size", strconv.FormatUint(total, 10))
	}
	for _, b := range banks {
		d := b.d
		if d.Size != 0 && d.Size != 0xffff {
			f.add("memory", b.name, "size", strconv.FormatUint(d.GetSizeBytes(), 10))
		}
		if d.Speed != 0 && d.Speed != 0xffff {
			f.add("memory", b.name, "clock", strconv.FormatUint(uint64(d.Speed)*1000000, 10))
		}
		f.add("memory", b.name, "description", bankDescription(d))
		f.addStr("memory", b.name, "vendor", dmiStr(d.Manufacturer))
		f.addStr("memory", b.name, "product", dmiStr(d.PartNumber))
		f.addStr("memory", b.name, "serial", dmiStr(d.SerialNumber))
		f.addStr("memory", b.name, "slot", dmiStr(d.DeviceLocator))
	}
	f.add("memory", "banks", "count", strconv.Itoa(len(banks)))
}

// bankDescription words a bank as lshw does: "[empty]", or the form
// factor, type, type details and speed ("DIMM DDR4 Synchronous 2666 MHz
// (0.4 ns)").
func bankDescription(d *smbios.MemoryDevice) string {
	if d.Size == 0 {
		return "[empty]"
	}
	var parts []string
	if ff := d.FormFactor.String(); ff != "" && ff != "Unknown" && ff != "Other" {
		parts = append(parts, ff)
	}
	if t := d.Type.String(); t != "" && t != "Unknown" && t != "Other" {
		parts = append(parts, t)
	}
	if td := d.TypeDetail.String(); td != "None" {
		for _, w := range strings.Split(td, " ") {
			if w != "" && w != "Other" && w != "Unknown" {
				parts = append(parts, w)
			}
		}
	}
	if d.Speed != 0 && d.Speed != 0xffff {
		parts = append(parts, fmt.Sprintf("%d MHz (%.1f ns)", d.Speed, 1000/float64(d.Speed)))
	}
	if len(parts) == 0 {
		return "Memory"
	}
	return strings.Join(parts, " ")
}

// networkFacts is lshw's network nodes with the hardware package's
// additions: the netmask, ethtool -a and ethtool -k.
func networkFacts(ctx context.Context, f *facts, o *options) {
	ifs, err := interfaces(ctx, o)
	if err != nil {
		return
	}
	live := o.sysRoot == "/"
	for _, ifc := range ifs {
		n := ifc.Name
		dir := o.path(filepath.Join("sys/class/net", n))
		if pci := pciAddress(filepath.Join(dir, "device")); pci != "" {
			f.add("network", n, "businfo", "pci@"+pci)
		}
		if live {
			f.addStr("network", n, "firmware", nicFirmware(n))
		}
		speed, _ := strconv.ParseInt(readTrim(filepath.Join(dir, "speed")), 10, 64)
		if speed > 0 {
			f.add("network", n, "size", strconv.FormatInt(speed*1000000, 10))
		}
		if live {
			ipv4Facts(f, n)
		}
		link := "no"
		if ifc.HasCarrier {
			link = "yes"
		}
		f.add("network", n, "link", link)
		if ifc.Driver != nil {
			f.add("network", n, "driver", *ifc.Driver)
		}
		if speed > 0 {
			if d := readTrim(filepath.Join(dir, "duplex")); d == "full" || d == "half" {
				f.add("network", n, "duplex", d)
			}
			f.add("network", n, "speed", lshwSpeed(speed))
		}
		if live {
			if ls, err := readLinkSettings(n); err == nil {
				f.add("network", n, "autonegotiation", onOff(ls.Autoneg))
			}
		}
		f.add("network", n, "serial", strings.ToLower(ifc.MACAddress))
		if live {
			if an, rx, tx, err := readPause(n); err == nil {
				f.add("network", n, "Autonegotiate", onOff(an))
				f.add("network", n, "RX", onOff(rx))
				f.add("network", n, "TX", onOff(tx))
			}
			if feats, err := readFeatures(n); err == nil {
				for _, kv := range featureFacts(feats) {
					f.add("network", n, kv[0], kv[1])
				}
			}
		}
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ipv4Facts adds the NIC's first IPv4 address, its netmask, prefix
// length and network, as lshw and the hardware package do.
func ipv4Facts(f *facts, name string) {
	ni, err := net.InterfaceByName(name)
	if err != nil {
		return
	}
	addrs, _ := ni.Addrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		mask := net.IP(ipn.Mask).To4()
		f.add("network", name, "ipv4", ipn.IP.String())
		f.add("network", name, "ipv4-netmask", mask.String())
		f.add("network", name, "ipv4-cidr", strconv.Itoa(netmaskBits(mask)))
		f.add("network", name, "ipv4-network", ipn.IP.Mask(ipn.Mask).String())
		return
	}
}

// cpuTopology is what lscpu counts from sysfs.
type cpuTopology struct {
	logical        []int // online CPU numbers
	sockets        int
	coresPerSocket int
	threadsPerCore int
}

func readCPUTopology(o *options, info []cpuInfoSection) cpuTopology {
	var t cpuTopology
	base := o.path("sys/devices/system/cpu")
	t.logical = parseCPUList(readTrim(filepath.Join(base, "present")))
	if len(t.logical) == 0 {
		for _, s := range info {
			if n, err := strconv.Atoi(s["processor"]); err == nil {
				t.logical = append(t.logical, n)
			}
		}
	}
	pkgs := map[string]map[string]bool{}
	for _, c := range t.logical {
		top := filepath.Join(base, "cpu"+strconv.Itoa(c), "topology")
		pkg := readTrim(filepath.Join(top, "physical_package_id"))
		core := readTrim(filepath.Join(top, "core_id"))
		if pkg == "" {
			continue
		}
		if pkgs[pkg] == nil {
			pkgs[pkg] = map[string]bool{}
		}
		pkgs[pkg][core] = true
		if t.threadsPerCore == 0 {
			t.threadsPerCore = len(parseCPUList(readTrim(filepath.Join(top, "thread_siblings_list"))))
		}
	}
	t.sockets = len(pkgs)
	for _, cores := range pkgs {
		t.coresPerSocket = max(t.coresPerSocket, len(cores))
	}
	if t.sockets == 0 {
		t.sockets = 1
	}
	if t.threadsPerCore == 0 {
		t.threadsPerCore = 1
	}
	if t.coresPerSocket == 0 && len(t.logical) > 0 {
		t.coresPerSocket = len(t.logical) / t.sockets / t.threadsPerCore
	}
	return t
}

// armImplementers are lscpu's names for arm64 "CPU implementer" codes.
var armImplementers = map[uint64]string{0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "FUJITSU",
	0x48: "HiSilicon", 0x4e: "NVIDIA", 0x50: "APM", 0x51: "Qualcomm", 0x61: "Apple", 0x70: "Phytium", 0xc0: "Ampere"}

// cpuFacts is get_cpus: lscpu's summary per socket, logical CPUs and
// their governors, NUMA nodes.
func cpuFacts(f *facts, o *options) {
	text, _ := os.ReadFile(o.path("proc/cpuinfo"))
	info := parseCPUInfo(string(text))
	first := firstProcessor(info)
	t := readCPUTopology(o, info)
	base := o.path("sys/devices/system/cpu")

	f.add("cpu", "physical", "number", t.sockets)
	if v := readFirstLine(filepath.Join(base, "smt/control")); v != "" {
		f.add("cpu", "physical", "smt", v)
	}
	vendor, product, flags := first["vendor_id"], first["model name"], first["flags"]
	if impl, err := strconv.ParseUint(first["cpu implementer"], 0, 16); err == nil {
		vendor = armImplementers[impl]
		if product == "" {
			product = armModelName(string(text))
		}
	}
	if flags == "" {
		flags = first["features"]
	}
	caches := cpuCaches(filepath.Join(base, "cpu"+strconv.Itoa(firstOr(t.logical, 0)), "cache"))
	minMHz, maxMHz := cpuFreqRange(o, t.logical)
	for p := range t.sockets {
		tag := "physical_" + strconv.Itoa(p)
		if v := readFirstLine(filepath.Join(base, "cpufreq/boost")); v != "" {
			b := "disabled"
			if v == "1" {
				b = "enabled"
			}
			f.add("cpu", tag, "boost", b)
		}
		f.addStr("cpu", tag, "vendor", vendor)
		f.addStr("cpu", tag, "product", product)
		f.add("cpu", tag, "cores", t.coresPerSocket)
		f.add("cpu", tag, "threads", t.threadsPerCore*t.coresPerSocket)
		if n, err := strconv.Atoi(first["cpu family"]); err == nil {
			f.add("cpu", tag, "family", n)
		}
		if v := first["model"]; v != "" {
			f.add("cpu", tag, "model", maybeInt(v))
		}
		if v := first["stepping"]; v != "" {
			f.add("cpu", tag, "stepping", maybeInt(v))
		}
		f.addStr("cpu", tag, "architecture", machineArch())
		for _, c := range caches {
			f.add("cpu", tag, c[0], c[1])
		}
		if maxMHz > 0 {
			f.add("cpu", tag, "min_Mhz", minMHz)
			f.add("cpu", tag, "max_Mhz", maxMHz)
		}
		f.addStr("cpu", tag, "flags", flags)
		f.add("cpu", tag, "threads_per_core", t.threadsPerCore)
	}
	f.add("cpu", "logical", "number", len(t.logical))
	for _, c := range t.logical {
		gov := readFirstLine(filepath.Join(base, "cpufreq", "policy"+strconv.Itoa(c), "scaling_governor"))
		if gov == "" {
			gov = readFirstLine(filepath.Join(base, "cpu"+strconv.Itoa(c), "cpufreq/scaling_governor"))
		}
		if gov != "" {
			f.add("cpu", "logical_"+strconv.Itoa(c), "governor", gov)
		}
	}
	numaFacts(f, o)
}

func firstOr(s []int, d int) int {
	if len(s) > 0 {
		return s[0]
	}
	return d
}

// readFirstLine is the hardware package's from_file: the first line,
// "" when the file cannot be read.
func readFirstLine(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// cpuCaches names the first CPU's caches as lscpu's old summary did
// ("l1d cache", "l1i cache", "l2 cache", "l3 cache"), sizes as lscpu
// words them.
func cpuCaches(dir string) [][2]string {
	entries, _ := filepath.Glob(filepath.Join(dir, "index[0-9]*"))
	sort.Strings(entries)
	var out [][2]string
	for _, e := range entries {
		level := readTrim(filepath.Join(e, "level"))
		typ := readTrim(filepath.Join(e, "type"))
		size := lscpuCacheSize(readTrim(filepath.Join(e, "size")))
		if level == "" || size == "" {
			continue
		}
		name := "l" + level
		switch typ {
		case "Data":
			name += "d"
		case "Instruction":
			name += "i"
		}
		out = append(out, [2]string{name + " cache", size})
	}
	return out
}

// cpuFreqRange is lscpu's CPU min/max MHz: the extremes over the CPUs'
// cpufreq limits; 0 without cpufreq (VMs), when lscpu prints neither.
func cpuFreqRange(o *options, cpus []int) (minMHz, maxMHz float64) {
	for _, c := range cpus {
		dir := o.path(filepath.Join("sys/devices/system/cpu", "cpu"+strconv.Itoa(c), "cpufreq"))
		lo, err1 := strconv.ParseFloat(readTrim(filepath.Join(dir, "cpuinfo_min_freq")), 64)
		hi, err2 := strconv.ParseFloat(readTrim(filepath.Join(dir, "cpuinfo_max_freq")), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if minMHz == 0 || lo/1000 < minMHz {
			minMHz = lo / 1000
		}
		maxMHz = max(maxMHz, hi/1000)
	}
	return minMHz, maxMHz
}

// numaFacts is lscpu's NUMA summary.
func numaFacts(f *facts, o *options) {
	nodes, _ := filepath.Glob(o.path("sys/devices/system/node/node[0-9]*"))
	type node struct {
		id   int
		cpus []int
	}
	var ns []node
	for _, nd := range nodes {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(nd), "node"))
		if err != nil {
			continue
		}
		ns = append(ns, node{id, parseCPUList(readTrim(filepath.Join(nd, "cpulist")))})
	}
	if len(ns) == 0 {
		return
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].id < ns[j].id })
	f.add("numa", "nodes", "count", len(ns))
	for _, n := range ns {
		tag := "node_" + strconv.Itoa(n.id)
		f.add("numa", tag, "cpu_count", len(n.cpus))
		f.add("numa", tag, "cpu_mask", cpuMask(n.cpus))
	}
}

// kernelFacts is `uname -r`, `uname -i` and /proc/cmdline.
func kernelFacts(f *facts, o *options) {
	var u unix.Utsname
	if o.sysRoot == "/" && unix.Uname(&u) == nil {
		f.addStr("system", "kernel", "version", unix.ByteSliceToString(u.Release[:]))
	}
	f.addStr("system", "kernel", "arch", machineArch())
	f.addStr("system", "kernel", "cmdline", readFirstLine(o.path("proc/cmdline")))
}

// rtcFacts is detect_rtc_clock: timedatectl's "RTC in local TZ" answer
// ("no" for an RTC in UTC, the default without /etc/adjtime). With the RTC
// in local time timedatectl prints a warning after that line, which the
// hardware package's pattern does not match: it reports "unknown".
func rtcFacts(f *facts, o *options) {
	v := "no"
	if b, err := os.ReadFile(o.path("etc/adjtime")); err == nil {
		lines := strings.Split(string(b), "\n")
		if len(lines) >= 3 && strings.TrimSpace(lines[2]) == "LOCAL" {
			v = "unknown"
		}
	}
	f.add("system", "rtc", "utc", v)
}

// Auxiliary vector entries detect_auxv keeps (LD_SHOW_AUXV's names).
const (
	atFlags        = 8
	atPageSz       = 6
	atPlatform     = 15
	atHWCap        = 16
	atBasePlatform = 24
	atHWCap2       = 26
)

// auxvFacts is detect_auxv: what the dynamic loader prints with
// LD_SHOW_AUXV for a process, read from this process's own auxiliary
// vector, worded as glibc words it (HWCAP hex without 0x, HWCAP2 and
// FLAGS with it, PAGESZ decimal, the platform strings).
func auxvFacts(f *facts, o *options) {
	if o.sysRoot != "/" {
		return
	}
	raw, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return
	}
	for _, kv := range parseAuxv(raw, readOwnString) {
		f.add("hw", "auxv", kv[0], kv[1])
	}
}

// parseAuxv turns a native-endian auxiliary vector into detect_auxv's
// (key, value) pairs, in the vector's order; str reads a string at an
// address of this process.
func parseAuxv(raw []byte, str func(addr uint64) string) [][2]string {
	var out [][2]string
	word := int(unsafe.Sizeof(uintptr(0)))
	for i := 0; i+2*word <= len(raw); i += 2 * word {
		var k, v uint64
		if word == 8 {
			k, v = binary.NativeEndian.Uint64(raw[i:]), binary.NativeEndian.Uint64(raw[i+8:])
		} else {
			k, v = uint64(binary.NativeEndian.Uint32(raw[i:])), uint64(binary.NativeEndian.Uint32(raw[i+4:]))
		}
		switch k {
		case 0:
			return out
		case atHWCap:
			out = append(out, [2]string{"hwcap", strconv.FormatUint(v, 16)})
		case atHWCap2:
			out = append(out, [2]string{"hwcap2", "0x" + strconv.FormatUint(v, 16)})
		case atPageSz:
			out = append(out, [2]string{"pagesz", strconv.FormatUint(v, 10)})
		case atFlags:
			out = append(out, [2]string{"flags", "0x" + strconv.FormatUint(v, 16)})
		case atPlatform:
			if s := str(v); s != "" {
				out = append(out, [2]string{"platform", s})
			}
		case atBasePlatform:
			if s := str(v); s != "" {
				out = append(out, [2]string{"base_platform", s})
			}
		}
	}
	return out
}

// readOwnString reads a NUL-terminated string of this process (the
// platform strings the kernel put on the initial stack) through
// /proc/self/mem.
func readOwnString(addr uint64) string {
	m, err := os.Open("/proc/self/mem")
	if err != nil {
		return ""
	}
	defer m.Close()
	b := make([]byte, 64)
	n, _ := m.ReadAt(b, int64(addr))
	s, _, _ := strings.Cut(string(b[:n]), "\x00")
	return s
}
