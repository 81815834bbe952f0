package logbundle

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// pciClasses names the PCI base classes and the subclasses servers have,
// as lspci words them; the full pci.ids database is not in the ramdisk.
var pciClasses = map[string]string{
	"00": "Unclassified device", "01": "Mass storage controller", "02": "Network controller",
	"03": "Display controller", "04": "Multimedia controller", "05": "Memory controller",
	"06": "Bridge", "07": "Communication controller", "08": "Generic system peripheral",
	"09": "Input device controller", "0b": "Processor", "0c": "Serial bus controller",
	"0d": "Wireless controller", "0e": "Intelligent controller", "10": "Encryption controller",
	"11": "Signal processing controller", "12": "Processing accelerators", "ff": "Unassigned class",
	"0100": "SCSI storage controller", "0101": "IDE interface", "0104": "RAID bus controller",
	"0106": "SATA controller", "0107": "Serial Attached SCSI controller", "0108": "Non-Volatile memory controller",
	"0200": "Ethernet controller", "0207": "Infiniband controller", "0280": "Network controller",
	"0300": "VGA compatible controller", "0600": "Host bridge", "0601": "ISA bridge", "0604": "PCI bridge",
	"0c03": "USB controller", "0c04": "Fibre Channel", "0c05": "SMBus", "0c07": "IPMI Interface",
}

// pciClassName is lspci's name of a class code from sysfs (0x010802).
func pciClassName(class string) (code, name string) {
	class = strings.TrimPrefix(strings.ToLower(class), "0x")
	if len(class) < 4 {
		return class, pciClasses["ff"]
	}
	code = class[:4]
	if n, ok := pciClasses[code]; ok {
		return code, n
	}
	if n, ok := pciClasses[code[:2]]; ok {
		return code, n
	}
	return code, "Class " + code
}

// lspci is `lspci -nnk`-like: slot, class, vendor:device, subsystem,
// revision and the driver bound, from /sys/bus/pci/devices.
func (c *Collector) lspci(context.Context) ([]byte, error) {
	base := filepath.Join(c.sys, "bus", "pci", "devices")
	var b strings.Builder
	for _, slot := range names(base) {
		d := filepath.Join(base, slot)
		hex := func(f string) string { return strings.TrimPrefix(readTrim(filepath.Join(d, f)), "0x") }
		code, name := pciClassName(readTrim(filepath.Join(d, "class")))
		fmt.Fprintf(&b, "%s %s [%s]: [%s:%s]", slot, name, code, hex("vendor"), hex("device"))
		if rev := hex("revision"); rev != "" {
			if n, err := strconv.ParseUint(rev, 16, 8); err == nil && n != 0 {
				fmt.Fprintf(&b, " (rev %02x)", n)
			}
		}
		b.WriteByte('\n')
		if sv := hex("subsystem_vendor"); sv != "" {
			fmt.Fprintf(&b, "\tSubsystem: [%s:%s]\n", sv, hex("subsystem_device"))
		}
		if drv, err := filepath.EvalSymlinks(filepath.Join(d, "driver")); err == nil {
			fmt.Fprintf(&b, "\tKernel driver in use: %s\n", filepath.Base(drv))
		}
		if mod := readTrim(filepath.Join(d, "modalias")); mod != "" {
			fmt.Fprintf(&b, "\tModalias: %s\n", mod)
		}
	}
	return []byte(b.String()), nil
}
