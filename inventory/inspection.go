package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HardwareManager is the manager name and version inspection reports
// (IPA's generic hardware manager, which goipa stands in for).
var HardwareManager = map[string]any{"name": "generic_hardware_manager", "version": "1.1"}

// InspectionData builds the inspection body for the collectors IPA knows
// (spec 6.3), without the `logs` collector, which is the agent's. Unknown
// collectors are listed in `error`, as IPA reports collector failures.
func InspectionData(ctx context.Context, inv *Inventory, collectors []string, opts ...Option) map[string]any {
	o := newOptions(opts)
	data := map[string]any{}
	var problems []string
	for _, c := range collectors {
		switch c {
		case "default":
			data["inventory"] = inv
			if d, err := SelectRootDisk(inv.Disks, nil); err == nil {
				data["root_disk"] = d
			}
			if inv.Boot.PXEInterface != nil {
				data["boot_interface"] = *inv.Boot.PXEInterface
			}
		case "logs":
			// filled by the agent
		case "pci-devices":
			data["pci_devices"] = pciDevices(o)
		case "numa-topology":
			data["numa_topology"] = topology(o)
		case "dmi-decode":
			// As IPA when dmidecode fails: no dmi key, the failure listed.
			if dmi, err := DMI(opts...); err != nil {
				problems = append(problems, "failed to read the DMI tables: "+err.Error())
			} else {
				data["dmi"] = dmi
			}
		default:
			problems = append(problems, "collector "+c+" is not supported by goipa")
		}
	}
	data["configuration"] = map[string]any{"collectors": collectors, "managers": []any{HardwareManager}}
	if len(problems) > 0 {
		data["error"] = strings.Join(problems, "; ")
	} else {
		data["error"] = nil
	}
	return data
}

// PCIDevice is IPA's pci_devices entry (hex without 0x).
type PCIDevice struct {
	VendorID   string `json:"vendor_id"`
	ProductID  string `json:"product_id"`
	Class      string `json:"class"`
	Revision   string `json:"revision"`
	Bus        string `json:"bus"`
	NUMANodeID *int   `json:"numa_node_id"`
}

// pciDevices lists /sys/bus/pci/devices.
func pciDevices(o *options) []PCIDevice {
	base := o.path("sys/bus/pci/devices")
	entries, err := os.ReadDir(base)
	if err != nil {
		return []PCIDevice{}
	}
	out := []PCIDevice{}
	hex := func(p string) string { return strings.TrimPrefix(readTrim(p), "0x") }
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		d := PCIDevice{VendorID: hex(filepath.Join(dir, "vendor")), ProductID: hex(filepath.Join(dir, "device")),
			Class: hex(filepath.Join(dir, "class")), Revision: hex(filepath.Join(dir, "revision")), Bus: e.Name()}
		if n, err := strconv.Atoi(readTrim(filepath.Join(dir, "numa_node"))); err == nil && n >= 0 {
			d.NUMANodeID = &n
		}
		out = append(out, d)
	}
	return out
}
