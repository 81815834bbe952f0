package inventory

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHardwareFactMarshalsAsAList(t *testing.T) {
	b, err := json.Marshal([]HardwareFact{{"cpu", "physical", "number", 2}, {"disk", "sda", "size", "480"}})
	require.NoError(t, err)
	assert.JSONEq(t, `[["cpu","physical","number",2],["disk","sda","size","480"]]`, string(b))
}

func TestFactsKeepKeysUnique(t *testing.T) {
	var f facts
	f.add("disk", "sda", "id", "ata-A")
	f.add("disk", "sda", "size", "480")
	f.add("disk", "sda", "id", "ata-B") // the value the hooks' dict would keep
	f.add("disk", "sdb", "id", "ata-C")
	f.addStr("disk", "sdb", "vendor", "  ")
	assert.Equal(t, []HardwareFact{{"disk", "sda", "id", "ata-B"}, {"disk", "sda", "size", "480"}, {"disk", "sdb", "id", "ata-C"}}, f.list)
}

const cpuinfoTwoSockets = `processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
stepping	: 7
cpu MHz		: 2500.000
cache size	: 28160 KB
physical id	: 0
flags		: fpu vme de  pse tsc
bogomips	: 5000.00

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id	: 1
flags		: fpu vme de  pse tsc
bogomips	: 5000.00
`

func TestParseCPUInfo(t *testing.T) {
	secs := parseCPUInfo(cpuinfoTwoSockets)
	require.Len(t, secs, 2)
	first := firstProcessor(secs)
	assert.Equal(t, "GenuineIntel", first["vendor_id"])
	assert.Equal(t, "85", first["model"])
	assert.Equal(t, "fpu vme de  pse tsc", first["flags"], "lscpu prints the line as the kernel wrote it")
	assert.Equal(t, "1", secs[1]["processor"])

	// arm64: "Hardware" after the processors forms its own block.
	arm := "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\nHardware\t: foo\n"
	secs = parseCPUInfo(arm)
	require.Len(t, secs, 2)
	assert.Equal(t, "0x41", firstProcessor(secs)["cpu implementer"])
	// Two processors without a blank line between them still split.
	assert.Len(t, parseCPUInfo("processor: 0\nprocessor: 1\n"), 2)
}

func FuzzParseCPUInfo(f *testing.F) {
	f.Add(cpuinfoTwoSockets)
	f.Add("processor\t: 0\nFeatures\t: fp\n\n\nHardware: x")
	f.Add(":\n:::\nprocessor:\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, sec := range parseCPUInfo(s) {
			if len(sec) == 0 {
				t.Fatal("empty section")
			}
		}
		_ = firstProcessor(parseCPUInfo(s))
		_ = armModelName(s)
	})
}

func TestLscpuWording(t *testing.T) {
	for in, want := range map[string]string{"32K": "32 KiB", "1024K": "1 MiB", "1280K": "1.3 MiB", "16384K": "16 MiB", "30M": "30 MiB", "": "", "x": "", "-1K": ""} {
		assert.Equal(t, want, lscpuCacheSize(in), in)
	}
	assert.Equal(t, "3", cpuMask([]int{0, 1}))
	assert.Equal(t, "f0000000f", cpuMask([]int{0, 1, 2, 3, 32, 33, 34, 35}))
	assert.Equal(t, "0", cpuMask(nil))
	assert.Equal(t, int64(85), maybeInt("85"))
	assert.Equal(t, int64(0xd0c), maybeInt("0xd0c"))
	assert.Equal(t, "abc", maybeInt("abc"))
	assert.Equal(t, 24, netmaskBits([]byte{255, 255, 255, 0}))
	assert.Equal(t, 20, netmaskBits([]byte{255, 255, 240, 0}))
	assert.Equal(t, int64(480), sizeInGB(937703088)) // a 480 GB SSD's sectors
	assert.Equal(t, "10Gbit/s", lshwSpeed(10000))
	assert.Equal(t, "100Mbit/s", lshwSpeed(100))
	assert.Equal(t, "2500Mbit/s", lshwSpeed(2500))
}

func FuzzLscpuCacheSize(f *testing.F) {
	for _, s := range []string{"32K", "1M", "2G", "", "K", "99999999999999999999K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if out := lscpuCacheSize(s); out != "" && !strings.Contains(out, "B") {
			t.Fatalf("%q -> %q", s, out)
		}
	})
}

func TestFeatureFactsFollowEthtoolK(t *testing.T) {
	feats := []netFeature{
		{Name: "tx-scatter-gather", Available: true, Requested: true, Active: true},
		{Name: "tx-checksum-ipv4", Available: false},
		{Name: "tx-checksum-ip-generic", Available: true, Requested: true, Active: true},
		{Name: "tx-scatter-gather-fraglist", Available: false},
		{Name: "rx-gro", Available: true, Requested: true, Active: true},
		{Name: "rx-lro", Available: true, Requested: true, Active: false},
		{Name: "highdma", Available: true, Active: true, Fixed: true},
		{Name: "rx-checksum", Available: true, Requested: false, Active: true},
		{Name: ""},
	}
	assert.Equal(t, [][2]string{
		{"rx-checksumming", "on [requested off]"},
		{"tx-checksumming", "on"},
		{"tx-checksumming/tx-checksum-ipv4", "off [fixed]"},
		{"tx-checksumming/tx-checksum-ip-generic", "on"},
		{"scatter-gather", "on"},
		{"scatter-gather/tx-scatter-gather", "on"},
		{"scatter-gather/tx-scatter-gather-fraglist", "off [fixed]"},
		{"generic-receive-offload", "on"},
		{"large-receive-offload", "off [requested on]"},
		{"highdma", "on [fixed]"},
	}, featureFacts(feats))
}

func TestMaxLinkSpeed(t *testing.T) {
	bits := func(idx ...int) []uint32 {
		out := make([]uint32, 4)
		for _, i := range idx {
			out[i/32] |= 1 << (i % 32)
		}
		return out
	}
	assert.Equal(t, int64(1000), maxLinkSpeed(bits(0, 1, 2, 3, 5, 6, 7)), "an e1000e: 10/100/1000baseT, autoneg, TP")
	assert.Equal(t, int64(25000), maxLinkSpeed(bits(17, 19, 31, 32, 33)), "a 25G port (bits beyond 31)")
	assert.Equal(t, int64(100000), maxLinkSpeed(bits(36, 38, 49, 50)))
	assert.Equal(t, int64(0), maxLinkSpeed(bits(6, 7, 13)), "no speed mode: virtio")
	assert.Equal(t, int64(0), maxLinkSpeed(nil))
}

// nvmeAnswers builds Identify Controller and SMART / Health log pages
// laid out as the NVMe base specification (1.4, figures 247 and 194)
// gives them, with QEMU's emulated controller's values (hw/nvme/ctrl.c:
// WCTEMP 343 K, CCTEMP 373 K, composite temperature 323 K) and counters
// large enough to need smartctl's thousands separators.
func nvmeAnswers() (id, log []byte) {
	id = make([]byte, nvmeIdentifySize)
	copy(id[4:24], "goipa-nvme-0        ")
	copy(id[24:64], "QEMU NVMe Ctrl                          ")
	copy(id[64:72], "8.2.2   ")
	binary.LittleEndian.PutUint16(id[266:], 343)
	binary.LittleEndian.PutUint16(id[268:], 373)
	binary.LittleEndian.PutUint64(id[280:], 1920383410176) // a 1.92 TB drive
	log = make([]byte, nvmeHealthLogSize)
	log[0] = 0x04 // reliability degraded
	binary.LittleEndian.PutUint16(log[1:], 323)
	binary.LittleEndian.PutUint64(log[112:], 42)
	binary.LittleEndian.PutUint64(log[128:], 12345)
	binary.LittleEndian.PutUint64(log[144:], 7)
	binary.LittleEndian.PutUint64(log[160:], 0)
	binary.LittleEndian.PutUint64(log[176:], 1000000)
	return id, log
}

// TestNVMeSMARTFacts checks the keys and values against what
// read_smart_nvme keeps of `smartctl -a` for the same answers.
func TestNVMeSMARTFacts(t *testing.T) {
	id, log := nvmeAnswers()
	assert.Equal(t, [][2]string{
		{"SMART/model_number", "QEMU NVMe Ctrl"},
		{"SMART/serial_number", "goipa-nvme-0"},
		{"SMART/firmware_version", "8.2.2"},
		{"SMART/total_nvm_capacity", "1,920,383,410,176 [1.92 TB]"},
		{"SMART/warning_temp_threshold", "70 Celsius"},
		{"SMART/critical_temp_threshold", "100 Celsius"},
		{"SMART/critical_warning", "0x04"},
		{"SMART/temperature", "50"},
		{"SMART/temperature_unit", "Celsius"},
		{"SMART/power_cycles", "42"},
		{"SMART/power_on_hours", "12,345"},
		{"SMART/unsafe_shutdowns", "7"},
		{"SMART/media_data_integrity_errors", "0"},
		{"SMART/error_information_log_entries", "1,000,000"},
	}, nvmeSMARTFacts(id, log))

	// A controller that answered only the log page.
	facts := nvmeSMARTFacts(nil, log)
	require.NotEmpty(t, facts)
	assert.Equal(t, "SMART/critical_warning", facts[0][0])
	assert.Empty(t, nvmeSMARTFacts(id[:100], log[:10]), "short answers are ignored")
	assert.Equal(t, "512 GB", smartctlCapacity(le128([]byte{0, 0, 0x1a, 0x36, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})))
}

func FuzzNVMeSMARTFacts(f *testing.F) {
	id, log := nvmeAnswers()
	f.Add(id, log)
	f.Add([]byte{}, make([]byte, nvmeHealthLogSize))
	f.Fuzz(func(t *testing.T, id, log []byte) {
		for _, kv := range nvmeSMARTFacts(id, log) {
			if !strings.HasPrefix(kv[0], "SMART/") {
				t.Fatalf("key %q", kv[0])
			}
		}
	})
}

func TestThousands(t *testing.T) {
	for in, want := range map[string]string{"0": "0", "999": "999", "1000": "1,000", "12345": "12,345", "1234567": "1,234,567"} {
		assert.Equal(t, want, thousands(in))
	}
}
