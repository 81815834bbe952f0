package inventory

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// HardwareManager is the manager name and version inspection reports
// (IPA's generic hardware manager, which goipa stands in for).
var HardwareManager = map[string]any{"name": "generic_hardware_manager", "version": "1.1"}

// Collectors are the inspection collectors goipa runs, by IPA's names
// (ironic_python_agent.inspector.collectors). "logs" is the agent's: it
// is known here so that it is not refused.
var Collectors = []string{"default", "logs", "extra-hardware", "pci-devices", "numa-topology", "dmi-decode", "lldp", "usb-devices"}

// UnknownCollectors returns the names in collectors that goipa does not
// run.
func UnknownCollectors(collectors []string) []string {
	var out []string
	for _, c := range collectors {
		if !slices.Contains(Collectors, c) {
			out = append(out, c)
		}
	}
	return out
}

// inspectionError words failures as IPA's AccumulatedFailures does; nil
// without any.
func inspectionError(problems []string) any {
	if len(problems) == 0 {
		return nil
	}
	return "The following errors were encountered:\n* " + strings.Join(problems, "\n* ")
}

// InspectionData builds the inspection body for the collectors IPA knows
// (spec 6.3), without the `logs` collector, which is the agent's. As in
// IPA, a collector name it does not know fails the whole inspection
// before any collector runs: the body is then only the `error`.
// Collector failures are listed in `error` beside what was collected.
func InspectionData(ctx context.Context, inv *Inventory, collectors []string, opts ...Option) map[string]any {
	o := newOptions(opts)
	data := map[string]any{}
	if unknown := UnknownCollectors(collectors); len(unknown) > 0 {
		data["error"] = inspectionError([]string{"Failed to load collector " + pyList(unknown)})
		return data
	}
	var problems []string
	for _, c := range collectors {
		if ctx.Err() != nil {
			problems = append(problems, "collector "+c+" failed: "+ctx.Err().Error())
			continue
		}
		switch c {
		case "default":
			data["inventory"] = inv
			if d, err := SelectRootDisk(inv.Disks, nil); err == nil {
				data["root_disk"] = d
			}
			// IPA sends boot_interface always, null when BOOTIF is unset.
			data["boot_interface"] = nil
			if inv.Boot.PXEInterface != nil {
				data["boot_interface"] = *inv.Boot.PXEInterface
			}
			data["configuration"] = map[string]any{"collectors": collectors, "managers": []any{HardwareManager}}
		case "logs":
			// filled by the agent
		case "extra-hardware":
			data["data"] = ExtraHardware(ctx, opts...)
		case "pci-devices":
			data["pci_devices"] = pciDevices(o)
		case "numa-topology":
			if hasNUMA(o) {
				data["numa_topology"] = topology(o)
			}
		case "dmi-decode":
			// As IPA when dmidecode fails: no dmi key, the failure listed.
			if dmi, err := DMI(opts...); err != nil {
				problems = append(problems, "failed to read the DMI tables: "+err.Error())
			} else {
				data["dmi"] = dmi
			}
		case "lldp":
			data["lldp_raw"] = lldpRaw(inv, o)
		case "usb-devices":
			data["usb_devices"] = usbDevices(o)
		}
	}
	data["error"] = inspectionError(problems)
	return data
}

// pyList words names as Python prints a list of strings, as IPA's
// "Failed to load collector ['x']" does.
func pyList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// lldpRaw is IPA's collect_lldp: every interface's LLDP TLVs as [type,
// hex] pairs, an empty list where none were heard.
func lldpRaw(inv *Inventory, o *options) map[string][]LLDPTLV {
	out := map[string][]LLDPTLV{}
	for _, ifc := range inv.Interfaces {
		tlvs := ifc.LLDP
		if o.heard != nil {
			tlvs = o.heard(ifc.Name)
		}
		if tlvs == nil {
			tlvs = []LLDPTLV{}
		}
		out[ifc.Name] = tlvs
	}
	return out
}

// PCIDevice is IPA's pci_devices entry: hex without 0x, revision null
// when sysfs has none, and the NUMA node as the text sysfs holds ("0",
// "-1"), null without the file, as IPA reads them.
type PCIDevice struct {
	VendorID   string  `json:"vendor_id"`
	ProductID  string  `json:"product_id"`
	Class      string  `json:"class"`
	Revision   *string `json:"revision"`
	Bus        string  `json:"bus"`
	NUMANodeID *string `json:"numa_node_id"`
}

// pciDevices lists /sys/bus/pci/devices.
func pciDevices(o *options) []PCIDevice {
	base := o.path("sys/bus/pci/devices")
	entries, err := os.ReadDir(base)
	if err != nil {
		return []PCIDevice{}
	}
	out := []PCIDevice{}
	// IPA's split('x')[1]: what follows the first x; a file without one
	// (or unreadable) drops the device, as IPA's IndexError/IOError does.
	afterX := func(p string) (string, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", false
		}
		parts := strings.Split(strings.TrimSpace(string(b)), "x")
		if len(parts) < 2 {
			return "", false
		}
		return parts[1], true
	}
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		vendor, ok1 := afterX(filepath.Join(dir, "vendor"))
		device, ok2 := afterX(filepath.Join(dir, "device"))
		class, ok3 := afterX(filepath.Join(dir, "class"))
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		d := PCIDevice{VendorID: vendor, ProductID: device, Class: class, Bus: e.Name()}
		if rev, ok := afterX(filepath.Join(dir, "revision")); ok {
			d.Revision = &rev
		}
		if b, err := os.ReadFile(filepath.Join(dir, "numa_node")); err == nil {
			n := strings.TrimSpace(string(b))
			d.NUMANodeID = &n
		}
		out = append(out, d)
	}
	return out
}
