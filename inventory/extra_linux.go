package inventory

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Accelerator is a GPU or other PCI accelerator: what operators schedule
// AI jobs on. Reported under goipa_accelerators, a key Ironic and the
// inspector pass through untouched.
type Accelerator struct {
	PCIAddress string `json:"pci_address"`
	VendorID   string `json:"vendor_id"`
	ProductID  string `json:"product_id"`
	Class      string `json:"class"`
	Kind       string `json:"kind"` // gpu, accelerator, coprocessor
	NUMANode   *int   `json:"numa_node"`
	Driver     string `json:"driver,omitempty"`
}

// BMC is the baseboard management controller as IPMI Get Device ID
// describes it; reported under goipa_bmc, beside IPA's bmc_* addresses.
type BMC struct {
	FirmwareVersion string `json:"firmware_version"` // as ipmitool mc info: 1.05
	IPMIVersion     string `json:"ipmi_version"`     // 2.0
	ManufacturerID  int    `json:"manufacturer_id"`  // IANA enterprise number
	ProductID       int    `json:"product_id"`
	DeviceID        int    `json:"device_id"`
	DeviceRevision  int    `json:"device_revision"`
	// AuxFirmwareRevision is vendor-specific, hex; empty when not given.
	AuxFirmwareRevision string `json:"aux_firmware_revision,omitempty"`
}

// accelerators lists GPUs, processing accelerators (0x12) and
// co-processors (0x0b40). A GPU is a 3D controller (0x0302) or a display
// controller from a GPU maker: the VGA every server's BMC brings (ASPEED,
// Matrox) and emulated display adapters are not compute, and an operator
// scheduling jobs on this list must not count them.
func accelerators(o *options) []Accelerator {
	base := o.path("sys/bus/pci/devices")
	entries, err := os.ReadDir(base)
	if err != nil {
		return []Accelerator{}
	}
	out := []Accelerator{}
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		class := strings.TrimPrefix(readTrim(filepath.Join(dir, "class")), "0x")
		kind := ""
		vendor := strings.TrimPrefix(readTrim(filepath.Join(dir, "vendor")), "0x")
		switch {
		case strings.HasPrefix(class, "0302"), strings.HasPrefix(class, "03") && gpuVendors[vendor]:
			kind = "gpu"
		case strings.HasPrefix(class, "12"):
			kind = "accelerator"
		case strings.HasPrefix(class, "0b40"):
			kind = "coprocessor"
		default:
			continue
		}
		a := Accelerator{PCIAddress: e.Name(), Class: class, Kind: kind,
			VendorID:  strings.TrimPrefix(readTrim(filepath.Join(dir, "vendor")), "0x"),
			ProductID: strings.TrimPrefix(readTrim(filepath.Join(dir, "device")), "0x")}
		if n, err := strconv.Atoi(readTrim(filepath.Join(dir, "numa_node"))); err == nil && n >= 0 {
			a.NUMANode = &n
		}
		if l, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
			a.Driver = filepath.Base(l)
		}
		out = append(out, a)
	}
	return out
}

// gpuVendors make GPUs whose display controllers (0x0300, 0x0380) are
// compute devices: NVIDIA, AMD/ATI, Intel.
var gpuVendors = map[string]bool{"10de": true, "1002": true, "8086": true}

// nicFirmware asks the driver for the NIC's firmware version (ethtool's
// driver-info ioctl).
func nicFirmware(name string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Fw_version[:])
}

// NUMATopology is IPA's numa-topology collector: memory, CPUs and NICs
// per NUMA node.
type NUMATopology struct {
	RAM  []NUMARAM `json:"ram"`
	CPUs []NUMACPU `json:"cpus"`
	NICs []NUMANIC `json:"nics"`
}

// NUMARAM is one node's memory.
type NUMARAM struct {
	Node   int   `json:"numa_node"`
	SizeKB int64 `json:"size_kb"`
}

// NUMACPU is one physical core and its thread siblings.
type NUMACPU struct {
	CPU            int   `json:"cpu"`
	Node           int   `json:"numa_node"`
	ThreadSiblings []int `json:"thread_siblings"`
}

// NUMANIC is one NIC's node.
type NUMANIC struct {
	Name string `json:"name"`
	Node int    `json:"numa_node"`
}

func parseCPUList(s string) []int {
	var out []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if ok {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := a; i <= b && i-a < 1<<16; i++ {
			out = append(out, i)
		}
	}
	return out
}

// hasNUMA says whether sysfs has the node directory: without it IPA
// leaves numa_topology out of the body.
func hasNUMA(o *options) bool {
	st, err := os.Stat(o.path("sys/devices/system/node"))
	return err == nil && st.IsDir()
}

// topology reads the NUMA layout from sysfs.
func topology(o *options) NUMATopology {
	t := NUMATopology{RAM: []NUMARAM{}, CPUs: []NUMACPU{}, NICs: []NUMANIC{}}
	nodes, _ := filepath.Glob(o.path("sys/devices/system/node/node[0-9]*"))
	sort.Strings(nodes)
	for _, nd := range nodes {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(nd), "node"))
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(nd, "meminfo")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 4 && f[2] == "MemTotal:" {
					kb, _ := strconv.ParseInt(f[3], 10, 64)
					t.RAM = append(t.RAM, NUMARAM{Node: id, SizeKB: kb})
				}
			}
		}
		seen := map[string]bool{}
		for _, cpu := range parseCPUList(readTrim(filepath.Join(nd, "cpulist"))) {
			sib := readTrim(o.path(filepath.Join("sys/devices/system/cpu", "cpu"+strconv.Itoa(cpu), "topology/thread_siblings_list")))
			if seen[sib] {
				continue
			}
			seen[sib] = true
			core, _ := strconv.Atoi(readTrim(o.path(filepath.Join("sys/devices/system/cpu", "cpu"+strconv.Itoa(cpu), "topology/core_id"))))
			t.CPUs = append(t.CPUs, NUMACPU{CPU: core, Node: id, ThreadSiblings: parseCPUList(sib)})
		}
	}
	if ifs, err := os.ReadDir(o.path("sys/class/net")); err == nil {
		for _, i := range ifs {
			// IPA lists every NIC with a numa_node file, -1 (no node) too.
			if n, err := strconv.Atoi(readTrim(o.path(filepath.Join("sys/class/net", i.Name(), "device/numa_node")))); err == nil {
				t.NICs = append(t.NICs, NUMANIC{Name: i.Name(), Node: n})
			}
		}
	}
	return t
}
