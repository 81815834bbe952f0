package inventory

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// The extra-hardware collector reports what the python `hardware`
// package's hardware-detect prints: a list of [category, name, key,
// value] items. Ironic's and ironic-inspector's extra_hardware hooks turn
// it into extra[category][name][key], so the names below are the
// package's, word for word; hardware-detect reads them from lshw, lscpu,
// sysfs, ethtool, smartctl and ipmitool, goipa from sysfs, the SMBIOS
// tables and ioctls.

// HardwareFact is one item of extra-hardware's data; it marshals as the
// four-element list the hooks expect (any other shape makes them drop
// all of the data).
type HardwareFact struct {
	Category, Name, Key string
	// Value is a string, or a number where hardware-detect gives one
	// (the cpu and numa counts, MHz figures).
	Value any
}

// MarshalJSON renders the list.
func (f HardwareFact) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{f.Category, f.Name, f.Key, f.Value})
}

// facts collects items with unique keys within each (category, name):
// the hooks build a dict, so a second value for a key would silently
// replace the first; here the later value replaces the earlier one in
// place, which is what the hooks would have kept.
type facts struct {
	list  []HardwareFact
	index map[[3]string]int
}

func (f *facts) add(category, name, key string, value any) {
	if f.index == nil {
		f.index = map[[3]string]int{}
	}
	k := [3]string{category, name, key}
	if i, ok := f.index[k]; ok {
		f.list[i].Value = value
		return
	}
	f.index[k] = len(f.list)
	f.list = append(f.list, HardwareFact{category, name, key, value})
}

// addStr adds a string value unless it is empty: hardware-detect leaves
// out what lshw or sysfs do not give.
func (f *facts) addStr(category, name, key, value string) {
	if value = strings.TrimSpace(value); value != "" {
		f.add(category, name, key, value)
	}
}

// cpuInfoSection is one processor's block of /proc/cpuinfo, keys as the
// kernel writes them (lower-cased, trimmed).
type cpuInfoSection map[string]string

// parseCPUInfo splits /proc/cpuinfo into its processor blocks. Lines
// outside any "processor" block (arm64's trailing "Hardware", s390's
// header) form a block of their own.
func parseCPUInfo(text string) []cpuInfoSection {
	var out []cpuInfoSection
	cur := cpuInfoSection{}
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur = cpuInfoSection{}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := cur[k]; dup && k == "processor" {
			flush()
		}
		cur[k] = strings.TrimSpace(v)
	}
	flush()
	return out
}

// firstProcessor is the block lscpu takes its summary from.
func firstProcessor(secs []cpuInfoSection) cpuInfoSection {
	for _, s := range secs {
		if _, ok := s["processor"]; ok {
			return s
		}
	}
	if len(secs) > 0 {
		return secs[0]
	}
	return cpuInfoSection{}
}

// maybeInt is the hardware package's _maybe_int: hex when the text has
// an x, decimal otherwise, the text itself when neither parses.
func maybeInt(s string) any {
	base := 10
	t := s
	if strings.Contains(s, "x") {
		base = 16
		t = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	}
	if n, err := strconv.ParseInt(t, base, 64); err == nil {
		return n
	}
	return s
}

// cpuMask is lscpu -x's mask of a CPU list: hex, no 0x, no leading zeros.
func cpuMask(cpus []int) string {
	m := new(big.Int)
	for _, c := range cpus {
		if c >= 0 && c < 1<<16 {
			m.SetBit(m, c, 1)
		}
	}
	return m.Text(16)
}

// lscpuCacheSize words a cache size as lscpu does ("32 KiB", "1 MiB"):
// sysfs gives "32K".
func lscpuCacheSize(sysfs string) string {
	s := strings.TrimSpace(sysfs)
	if s == "" {
		return ""
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K':
		mult, s = 1<<10, s[:len(s)-1]
	case 'M':
		mult, s = 1<<20, s[:len(s)-1]
	case 'G':
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<50)/mult {
		return ""
	}
	return humanIEC(n * mult)
}

// humanIEC is util-linux's size_to_human_string with SIZE_SUFFIX_SPACE
// and SIZE_SUFFIX_3LETTER: whole units, or one decimal rounded half up.
func humanIEC(b int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for i < len(units)-1 && b>>(10*(i+1)) > 0 {
		i++
	}
	whole := b >> (10 * i)
	frac := b - whole<<(10*i)
	if frac == 0 || i == 0 {
		return fmt.Sprintf("%d %s", whole, units[i])
	}
	// frac in thousandths, then rounded to tenths as util-linux does.
	d := (frac*1000/(int64(1)<<(10*i)) + 50) / 100
	if d == 10 {
		whole, d = whole+1, 0
	}
	if d == 0 {
		return fmt.Sprintf("%d %s", whole, units[i])
	}
	return fmt.Sprintf("%d.%d %s", whole, d, units[i])
}

// netmaskBits is the hardware package's get_cidr.
func netmaskBits(mask []byte) int {
	n := 0
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			if b&(1<<i) == 0 {
				return n
			}
			n++
		}
	}
	return n
}

// sizeInGB is diskinfo's sizeingb: 512-byte sectors to decimal GB,
// rounded down.
func sizeInGB(sectors int64) int64 { return sectors * 512 / 1000 / 1000 / 1000 }

// lshwSpeed words a link speed in Mb/s as lshw's "speed" setting does.
func lshwSpeed(mbps int64) string {
	switch {
	case mbps >= 1000 && mbps%1000 == 0:
		return fmt.Sprintf("%dGbit/s", mbps/1000)
	default:
		return fmt.Sprintf("%dMbit/s", mbps)
	}
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
