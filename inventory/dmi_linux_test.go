package inventory

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/u-root/u-root/pkg/smbios"
)

// TestDMIFromQEMUTables reads SMBIOS tables a QEMU 7.2 guest's kernel
// exposed (pc-i440fx, two sockets, 1 GiB, -smbios type=0 vendor, version
// and date set) into IPA's dmi shape.
func TestDMIFromQEMUTables(t *testing.T) {
	dmi, err := DMI(WithRoot("testdata/dmi-qemu"))
	require.NoError(t, err)
	bios := dmi["bios"].(map[string]any)
	assert.Equal(t, "Handle 0x0000, DMI type 0, 24 bytes", bios["Handle"])
	assert.Equal(t, "goipa-test-bios", bios["Vendor"])
	assert.Equal(t, "1.2.3", bios["Version"])
	assert.Equal(t, "01/02/2026", bios["Release Date"])
	assert.Equal(t, "0.0", bios["BIOS Revision"], "the row after the characteristics list stays in the block")
	assert.Equal(t, []string{"BIOS characteristics not supported", "Targeted content distribution is supported", "System is a virtual machine"}, bios["Characteristics"])

	cpus := dmi["cpu"].([]any)
	require.Len(t, cpus, 2)
	for i, c := range cpus {
		c := c.(map[string]any)
		assert.Equal(t, []string{"CPU 0", "CPU 1"}[i], c["Socket Designation"])
		assert.Equal(t, "2000 MHz", c["Max Speed"])
		assert.Equal(t, "Populated, Enabled", c["Status"])
		assert.Equal(t, "1", c["Core Count"])
	}

	mem := dmi["memory"].(map[string]any)
	assert.Equal(t, map[string]any{
		"Location": "Other", "Use": "System Memory", "Error Correction Type": "Multi-bit ECC",
		"Maximum Capacity": "1 GB", "Error Information Handle": "Not Provided", "Number Of Devices": 1,
		"devices": mem["devices"],
	}, mem)
	devs := mem["devices"].([]any)
	require.Len(t, devs, 1)
	d := devs[0].(map[string]any)
	assert.Equal(t, "Handle 0x1100, DMI type 17, 40 bytes", d["Handle"])
	assert.Equal(t, "1 GB", d["Size"])
	assert.Equal(t, "DIMM 0", d["Locator"])
	assert.Equal(t, "0x1000", d["Array Handle"])

	// What the inspection body carries.
	data := InspectionData(context.Background(), &Inventory{}, []string{"dmi-decode"}, WithRoot("testdata/dmi-qemu"))
	assert.Nil(t, data["error"])
	b, err := json.Marshal(data["dmi"])
	require.NoError(t, err)
	assert.Contains(t, string(b), `"Number Of Devices":1`)

	// Without tables: IPA's dmidecode failure, no dmi key.
	data = InspectionData(context.Background(), &Inventory{}, []string{"dmi-decode"}, WithRoot(t.TempDir()))
	assert.NotContains(t, data, "dmi")
	assert.Contains(t, data["error"], "failed to read the DMI tables")
}

// TestParseDMIText follows IPA's parser on dmidecode's own text from a
// two-socket server: arrays' device counts summed into the first array.
func TestParseDMIText(t *testing.T) {
	text := "# dmidecode 3.4\nGetting SMBIOS data from sysfs.\nSMBIOS 3.2.0 present.\n\n" +
		"Handle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n\tVendor: Dell Inc.\n\tVersion: 2.17.1\n\tCharacteristics:\n\t\tPCI is supported\n\t\tPNP is supported\n\tBIOS Revision: 2.17\n\n" +
		"Handle 0x0400, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: CPU1\n\tFlags:\n\t\tFPU (Floating-point unit on-chip)\n\t\tVME (Virtual mode extension)\n\tVersion: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\n\n" +
		"Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tUse: System Memory\n\tNumber Of Devices: 12\n\n" +
		"Handle 0x1001, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tNumber Of Devices: 12\n\n" +
		"Handle 0x1100, DMI type 17, 84 bytes\nMemory Device\n\tSize: 32 GB\n\tLocator: A1\n\n" +
		"Handle 0x1101, DMI type 17, 84 bytes\nMemory Device\n\tSize: No Module Installed\n\tLocator: A2\n\n" +
		"Handle 0x0500, DMI type 5, 20 bytes\nMemory Controller Information\n\tMaximum Memory Module Size: 32 MB\n\n" +
		"Handle 0xZZZZ, DMI type x, 2 bytes\nBroken\n\tKey: value\n"
	want := map[string]any{
		"bios": map[string]any{"Handle": "Handle 0x0000, DMI type 0, 26 bytes", "Vendor": "Dell Inc.", "Version": "2.17.1",
			"Characteristics": []string{"PCI is supported", "PNP is supported"}, "BIOS Revision": "2.17"},
		"cpu": []any{map[string]any{"Handle": "Handle 0x0400, DMI type 4, 48 bytes", "Socket Designation": "CPU1",
			"Flags":   []string{"FPU (Floating-point unit on-chip)", "VME (Virtual mode extension)"},
			"Version": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"}},
		"memory": map[string]any{"Location": "System Board Or Motherboard", "Use": "System Memory", "Number Of Devices": 24,
			"devices": []any{
				map[string]any{"Handle": "Handle 0x1100, DMI type 17, 84 bytes", "Size": "32 GB", "Locator": "A1"},
				map[string]any{"Handle": "Handle 0x1101, DMI type 17, 84 bytes", "Size": "No Module Installed", "Locator": "A2"},
			}},
	}
	assert.Equal(t, want, parseDMIText(text))
	assert.Equal(t, map[string]any{"bios": map[string]any{}, "cpu": []any{}, "memory": map[string]any{"devices": []any{}}}, parseDMIText(""))
}

func TestMemorySize(t *testing.T) {
	for _, tc := range []struct {
		v     uint64
		shift int
		want  string
	}{
		{512 << 20, 1, "512 GB"},
		{1536 << 10, 1, "1536 MB"},
		{1 << 20, 1, "1 GB"},
		{3 << 40, 0, "3 TB"},
		{0, 1, "0 kB"},
		{4 << 50, 1, "4 EB"},
	} {
		assert.Equal(t, tc.want, memorySize(tc.v, tc.shift), "%d << %d", tc.v, tc.shift)
	}
}

// type16 builds a Physical Memory Array structure.
func type16(capacityKB uint32, ext uint64, handle uint16, n uint16) []byte {
	b := []byte{16, 23, 0x34, 0x12, 0x03, 0x03, 0x05}
	b = append(b, byte(capacityKB), byte(capacityKB>>8), byte(capacityKB>>16), byte(capacityKB>>24))
	b = append(b, byte(handle), byte(handle>>8), byte(n), byte(n>>8))
	for i := 0; i < 8; i++ {
		b = append(b, byte(ext>>(8*i)))
	}
	return append(b, 0, 0)
}

func TestPhysicalMemoryArray(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"KB capacity", type16(256<<20, 0, 0xffff, 16),
			"Handle 0x1234, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tUse: System Memory\n\tError Correction Type: Single-bit ECC\n\tMaximum Capacity: 256 GB\n\tError Information Handle: No Error\n\tNumber Of Devices: 16"},
		{"extended capacity", type16(0x80000000, 6<<40, 0x0042, 48),
			"Handle 0x1234, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tUse: System Memory\n\tError Correction Type: Single-bit ECC\n\tMaximum Capacity: 6 TB\n\tError Information Handle: 0x0042\n\tNumber Of Devices: 48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _, err := smbios.ParseTable(tc.raw)
			require.NoError(t, err)
			assert.Equal(t, tc.want, physicalMemoryArray(tab))
		})
	}
}

func FuzzDMI(f *testing.F) {
	f.Add([]byte("Handle 0x0000, DMI type 0, 24 bytes\nBIOS Information\n\tVendor: x\n\tC:\n\t\ta\n\n"), []byte{16, 15, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0xfe, 0xff, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, text, table []byte) {
		parseDMIText(string(text))
		if tab, _, err := smbios.ParseTable(table); err == nil && tab.Type == dmiTypeMemoryArray {
			physicalMemoryArray(tab)
			dmidecodeText([]*smbios.Table{tab})
		}
	})
}

// TestDIMMBytes: physical_mb's source where SMBIOS has memory devices.
func TestDIMMBytes(t *testing.T) {
	assert.Equal(t, int64(1<<30), dimmBytes(newOptions([]Option{WithRoot("testdata/dmi-qemu")})))
	assert.Equal(t, int64(0), dimmBytes(newOptions([]Option{WithRoot(t.TempDir())})))
}
