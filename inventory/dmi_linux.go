package inventory

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/smbios"
)

// IPA's dmi-decode collector runs `dmidecode -t bios -t processor -t
// memory` and turns its text into a dict: the structures' fields become
// keys, named and worded as dmidecode prints them. goipa has no
// dmidecode: it reads the SMBIOS tables the kernel exposes, lets u-root's
// smbios package (which prints as dmidecode does) word the BIOS,
// processor and memory device structures, words the physical memory
// arrays itself (u-root has no parser for them), and reads that text with
// IPA's rules.

// SMBIOS structure types IPA keeps.
const (
	dmiTypeBIOS        = 0
	dmiTypeProcessor   = 4
	dmiTypeMemoryArray = 16
	dmiTypeMemoryDev   = 17
)

// DMI reads the SMBIOS tables under /sys/firmware/dmi/tables and returns
// IPA's dmi collector data: {"bios": {...}, "cpu": [{...}], "memory":
// {..., "devices": [{...}]}}.
func DMI(opts ...Option) (map[string]any, error) {
	o := newOptions(opts)
	entry, err := os.ReadFile(o.path("sys/firmware/dmi/tables/smbios_entry_point"))
	if err != nil {
		return nil, fmt.Errorf("dmi: %w", err)
	}
	table, err := os.ReadFile(o.path("sys/firmware/dmi/tables/DMI"))
	if err != nil {
		return nil, fmt.Errorf("dmi: %w", err)
	}
	return parseSMBIOS(entry, table)
}

// parseSMBIOS decodes the entry point and structure table.
func parseSMBIOS(entry, table []byte) (map[string]any, error) {
	info, err := smbios.ParseInfo(entry, table)
	if err != nil {
		return nil, fmt.Errorf("dmi: %w", err)
	}
	return parseDMIText(dmidecodeText(info.Tables)), nil
}

// dmidecodeText words the structures IPA asks dmidecode for, one block
// each, blocks separated by a blank line.
func dmidecodeText(tables []*smbios.Table) string {
	var b strings.Builder
	for _, t := range tables {
		var text string
		switch t.Type {
		case dmiTypeBIOS, dmiTypeProcessor, dmiTypeMemoryDev:
			s, err := smbios.ParseTypedTable(t)
			if err != nil {
				continue // dmidecode too skips what it cannot decode
			}
			text = s.String()
		case dmiTypeMemoryArray:
			text = physicalMemoryArray(t)
		default:
			continue
		}
		// A blank line inside a block would split it: u-root leaves one
		// between BIOS characteristics and their extension bytes.
		for _, l := range strings.Split(text, "\n") {
			if strings.TrimSpace(l) != "" {
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// physicalMemoryArray words a type 16 structure as dmidecode 3 does.
func physicalMemoryArray(t *smbios.Table) string {
	raw, _ := t.MarshalBinary()
	d := raw[:min(len(raw), int(t.Length))]
	at := func(off int) byte {
		if off < len(d) {
			return d[off]
		}
		return 0
	}
	word := func(off int) uint16 {
		if off+2 <= len(d) {
			return binary.LittleEndian.Uint16(d[off:])
		}
		return 0
	}
	lines := []string{
		fmt.Sprintf("Handle 0x%04X, DMI type 16, %d bytes", t.Handle, t.Length),
		"Physical Memory Array",
	}
	if len(d) < 0x0f {
		return strings.Join(lines, "\n")
	}
	lines = append(lines,
		"\tLocation: "+lookup(arrayLocations, at(0x04)),
		"\tUse: "+lookup(arrayUses, at(0x05)),
		"\tError Correction Type: "+lookup(arrayECC, at(0x06)))
	capacity := binary.LittleEndian.Uint32(d[0x07:])
	switch {
	case capacity == 0x80000000 && len(d) >= 0x17:
		lines = append(lines, "\tMaximum Capacity: "+memorySize(binary.LittleEndian.Uint64(d[0x0f:]), 0))
	case capacity == 0x80000000:
		lines = append(lines, "\tMaximum Capacity: Unknown")
	default:
		lines = append(lines, "\tMaximum Capacity: "+memorySize(uint64(capacity), 1))
	}
	switch h := word(0x0b); h {
	case 0xfffe:
		lines = append(lines, "\tError Information Handle: Not Provided")
	case 0xffff:
		lines = append(lines, "\tError Information Handle: No Error")
	default:
		lines = append(lines, fmt.Sprintf("\tError Information Handle: 0x%04X", h))
	}
	lines = append(lines, fmt.Sprintf("\tNumber Of Devices: %d", word(0x0d)))
	return strings.Join(lines, "\n")
}

func lookup(names map[byte]string, v byte) string {
	if n, ok := names[v]; ok {
		return n
	}
	return "<OUT OF SPEC>"
}

var arrayLocations = map[byte]string{
	0x01: "Other", 0x02: "Unknown", 0x03: "System Board Or Motherboard", 0x04: "ISA Add-on Card",
	0x05: "EISA Add-on Card", 0x06: "PCI Add-on Card", 0x07: "MCA Add-on Card", 0x08: "PCMCIA Add-on Card",
	0x09: "Proprietary Add-on Card", 0x0a: "NuBus", 0xa0: "PC-98/C20 Add-on Card", 0xa1: "PC-98/C24 Add-on Card",
	0xa2: "PC-98/E Add-on Card", 0xa3: "PC-98/Local Bus Add-on Card", 0xa4: "CXL Add-on Card",
}

var arrayUses = map[byte]string{
	0x01: "Other", 0x02: "Unknown", 0x03: "System Memory", 0x04: "Video Memory",
	0x05: "Flash Memory", 0x06: "Non-volatile RAM", 0x07: "Cache Memory",
}

var arrayECC = map[byte]string{
	0x01: "Other", 0x02: "Unknown", 0x03: "None", 0x04: "Parity",
	0x05: "Single-bit ECC", 0x06: "Multi-bit ECC", 0x07: "CRC",
}

// memorySize prints a size as dmidecode does: in the largest unit that
// keeps it whole, or one unit down (1536 MB, not 1.5 GB). shift is the
// unit of v: 0 bytes, 1 kB.
func memorySize(v uint64, shift int) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"}
	var split [7]uint64
	for i := range split {
		split[i] = v >> (10 * i) & 0x3ff
	}
	i := 6
	for i > 0 && split[i] == 0 {
		i--
	}
	c := split[i]
	if i > 0 && split[i-1] != 0 {
		i--
		c = split[i] + split[i+1]<<10
	}
	return strconv.FormatUint(c, 10) + " " + units[i+shift]
}

// parseDMIText reads dmidecode's text with IPA's rules (dmi_inspector.py
// parse_dmi): blocks split on blank lines; "Key: value" rows; a "Key:"
// with no value starts a list of the indented lines after it; the
// handle line is kept under "Handle"; the memory arrays' device counts
// are summed into the first array's row, which loses its handle.
func parseDMIText(text string) map[string]any {
	bios := map[string]any{}
	cpus := []any{}
	var arrays []map[string]any
	devices := []any{}
	for _, block := range strings.Split(text, "\n\n") {
		if !strings.HasPrefix(block, "Handle 0x") {
			continue
		}
		// "Handle 0x0018, DMI type 17, 27 bytes"
		parts := strings.SplitN(block, ",", 3)
		if len(parts) < 2 {
			continue
		}
		typ, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(parts[1]), "DMI type")))
		if err != nil {
			continue
		}
		switch typ {
		case dmiTypeBIOS:
			bios = dmiBlock(block)
		case dmiTypeProcessor:
			cpus = append(cpus, dmiBlock(block))
		case dmiTypeMemoryArray:
			arrays = append(arrays, dmiBlock(block))
		case dmiTypeMemoryDev:
			devices = append(devices, dmiBlock(block))
		}
	}
	memory := map[string]any{"devices": []any{}}
	if len(arrays) > 0 {
		total := 0
		for _, a := range arrays {
			s, _ := a["Number Of Devices"].(string)
			n, _ := strconv.Atoi(s)
			total += n
		}
		memory = arrays[0]
		memory["Number Of Devices"] = total
		delete(memory, "Handle")
	}
	if len(devices) > 0 {
		memory["devices"] = devices
	}
	return map[string]any{"bios": bios, "cpu": cpus, "memory": memory}
}

func dmiBlock(block string) map[string]any {
	rows := map[string]any{}
	listKey := ""
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok {
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			listKey = ""
			if v != "" {
				rows[k] = v
			} else {
				rows[k] = []string{}
				listKey = k
			}
			continue
		}
		switch {
		case strings.Contains(line, "Handle 0x"):
			rows["Handle"] = line
		case listKey != "":
			rows[listKey] = append(rows[listKey].([]string), line)
		}
	}
	return rows
}
