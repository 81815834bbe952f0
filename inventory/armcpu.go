package inventory

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// arm64's /proc/cpuinfo has no "model name" and no "flags": each processor
// names its implementer and part number (the MIDR_EL1 fields) and lists
// "Features". IPA takes the model from lscpu, which decodes the two
// numbers with a table; armParts is the server part of that table
// (util-linux lscpu-arm.c) so that goipa reports the same name, e.g.
// Neoverse-N1 on an Ampere Altra. An unknown part leaves the model empty,
// as lscpu prints none.
var armParts = map[uint64]map[uint64]string{
	0x41: { // ARM
		0xd03: "Cortex-A53", 0xd04: "Cortex-A35", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57",
		0xd08: "Cortex-A72", 0xd09: "Cortex-A73", 0xd0a: "Cortex-A75", 0xd0b: "Cortex-A76",
		0xd0c: "Neoverse-N1", 0xd0d: "Cortex-A77", 0xd40: "Neoverse-V1", 0xd41: "Cortex-A78",
		0xd49: "Neoverse-N2", 0xd4a: "Neoverse-E1", 0xd4f: "Neoverse-V2", 0xd84: "Neoverse-V3",
		0xd8e: "Neoverse-N3",
	},
	0x42: {0x516: "ThunderX2"}, // Broadcom (Vulcan)
	0x43: { // Cavium
		0x0a0: "ThunderX", 0x0a1: "ThunderX-88XX", 0x0a2: "ThunderX-81XX", 0x0a3: "ThunderX-83XX",
		0x0af: "ThunderX2-99xx", 0x0b8: "ThunderX3-T110",
	},
	0x46: {0x001: "A64FX"},                               // Fujitsu
	0x48: {0xd01: "TaiShan-v110", 0xd02: "TaiShan-v120"}, // HiSilicon (Kunpeng 920)
	0x50: {0x000: "X-Gene"},                              // APM
	0x51: {0xc00: "Falkor", 0xc01: "Saphira"},            // Qualcomm
	0x70: {0x662: "FTC662", 0x663: "FTC663"},             // Phytium
	0xc0: {0xac3: "Ampere-1", 0xac4: "Ampere-1a"},        // Ampere
}

// armModelName reads the first processor's "CPU implementer" and "CPU
// part" from an arm64 /proc/cpuinfo and names the core as lscpu does; ""
// when they are missing or unknown.
func armModelName(cpuinfo string) string {
	var impl, part string
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" && impl != "" {
				break // the end of the first processor
			}
			continue
		}
		switch strings.TrimSpace(k) {
		case "CPU implementer":
			impl = strings.TrimSpace(v)
		case "CPU part":
			part = strings.TrimSpace(v)
		}
	}
	i, err1 := strconv.ParseUint(impl, 0, 16)
	p, err2 := strconv.ParseUint(part, 0, 16)
	if err1 != nil || err2 != nil {
		return ""
	}
	return armParts[i][p]
}

// deviceTreeVendor fills what SMBIOS would have said on boards without it
// (arm64 boards booted with a device tree), as lshw (IPA's source) does:
// the tree's model as the product, its serial-number, and the vendor
// prefix of the first compatible string ("ampere,mtjade" → "ampere") as
// the manufacturer. Fields SMBIOS gave are kept.
func deviceTreeVendor(o *options, v *SystemVendor) {
	dt := o.path("sys/firmware/devicetree/base")
	if _, err := os.Stat(dt); err != nil {
		dt = o.path("proc/device-tree")
	}
	str := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dt, name))
		if err != nil {
			return ""
		}
		first, _, _ := strings.Cut(string(b), "\x00") // NUL-separated string lists
		return strings.TrimSpace(first)
	}
	if v.ProductName == "" {
		v.ProductName = str("model")
	}
	if v.SerialNumber == "" {
		v.SerialNumber = str("serial-number")
	}
	if v.Manufacturer == "" {
		if vendor, _, ok := strings.Cut(str("compatible"), ","); ok {
			v.Manufacturer = vendor
		}
	}
}
