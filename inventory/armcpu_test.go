package inventory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An Ampere Altra (Neoverse-N1 cores), trimmed to two processors.
const altraCPUInfo = `processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

processor	: 1
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1
`

func TestARMModelName(t *testing.T) {
	for _, tc := range []struct{ name, cpuinfo, want string }{
		{"altra", altraCPUInfo, "Neoverse-N1"},
		{"thunderx", "processor\t: 0\nCPU implementer\t: 0x43\nCPU part\t: 0x0a1\n", "ThunderX-88XX"},
		{"kunpeng", "processor\t: 0\nCPU implementer\t: 0x48\nCPU part\t: 0xd01\n", "TaiShan-v110"},
		{"ampereone", "processor\t: 0\nCPU implementer\t: 0xc0\nCPU part\t: 0xac3\n", "Ampere-1"},
		// QEMU's -cpu max: implementer 0 (software), part 'Q'.
		{"qemu max", "processor\t: 0\nCPU implementer\t: 0x00\nCPU part\t: 0x051\n", ""},
		{"x86", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n", ""},
		{"garbage", "CPU implementer: zz\nCPU part: 0xd0c\n", ""},
		{"first processor wins", "CPU implementer\t: 0x41\nCPU part\t: 0xd08\n\nCPU implementer\t: 0x41\nCPU part\t: 0xd03\n", "Cortex-A72"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, armModelName(tc.cpuinfo))
		})
	}
}

func FuzzARMModelName(f *testing.F) {
	f.Add(altraCPUInfo)
	f.Add("CPU implementer: 0x41\nCPU part: 0xd0c")
	f.Fuzz(func(t *testing.T, s string) {
		if name := armModelName(s); name != "" {
			found := false
			for _, parts := range armParts {
				for _, n := range parts {
					found = found || n == name
				}
			}
			if !found {
				t.Fatalf("%q is no part name", name)
			}
		}
	})
}

// TestDeviceTreeVendor: an arm64 board without SMBIOS names itself in its
// device tree.
func TestDeviceTreeVendor(t *testing.T) {
	root := t.TempDir()
	dt := filepath.Join(root, "sys/firmware/devicetree/base")
	require.NoError(t, os.MkdirAll(dt, 0o755))
	for name, val := range map[string]string{
		"model":         "Ampere Mt.Jade\x00",
		"serial-number": "MJ-0042\x00",
		"compatible":    "ampere,mtjade\x00ampere,altra\x00",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dt, name), []byte(val), 0o644))
	}
	o := newOptions([]Option{WithRoot(root)})
	var v SystemVendor
	deviceTreeVendor(o, &v)
	assert.Equal(t, SystemVendor{ProductName: "Ampere Mt.Jade", SerialNumber: "MJ-0042", Manufacturer: "ampere"}, v)

	// SMBIOS's answers stay.
	v = SystemVendor{ProductName: "QEMU Virtual Machine", Manufacturer: "QEMU"}
	deviceTreeVendor(o, &v)
	assert.Equal(t, SystemVendor{ProductName: "QEMU Virtual Machine", SerialNumber: "MJ-0042", Manufacturer: "QEMU"}, v)

	// No tree, nothing changes.
	v = SystemVendor{}
	deviceTreeVendor(newOptions([]Option{WithRoot(t.TempDir())}), &v)
	assert.Equal(t, SystemVendor{}, v)
}
