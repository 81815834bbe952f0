package inventory

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func makeLoop(t testing.TB, size int64) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "disk.img")
	require.NoError(t, os.WriteFile(f, nil, 0o644))
	require.NoError(t, os.Truncate(f, size))
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	require.NoError(t, err, "%s", out)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

// TestGoipaDevicesIsTheOnlyDeviceList runs on real loop devices: named
// with goipa-devices they are the whole list; otherwise loop devices are
// skipped as IPA skips them.
func TestGoipaDevicesIsTheOnlyDeviceList(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	a, b := makeLoop(t, 64<<20), makeLoop(t, 5<<30)
	ctx := context.Background()

	disks, err := BlockDevices(ctx, WithDevices([]string{b, a}))
	require.NoError(t, err)
	require.Len(t, disks, 2)
	byName := map[string]Disk{}
	for _, d := range disks {
		byName[d.Name] = d
	}
	assert.Equal(t, int64(64<<20), byName[a].Size)
	assert.Equal(t, int64(5<<30), byName[b].Size)
	assert.Equal(t, 512, byName[a].LogicalSectors)

	d, err := SelectRootDisk(disks, nil)
	require.NoError(t, err)
	assert.Equal(t, b, d.Name, "the only disk of at least 4 GiB")
	d, err = SelectRootDisk(disks, map[string]any{"name": a})
	require.NoError(t, err)
	assert.Equal(t, a, d.Name)

	all, err := BlockDevices(ctx)
	require.NoError(t, err)
	for _, d := range all {
		assert.False(t, strings.HasPrefix(d.Name, "/dev/loop"), "loop device %s listed without goipa-devices", d.Name)
	}

	inv, err := Collect(ctx, WithDevices([]string{a}), WithBootIF("01-02-fc-00-00-00-01"))
	require.NoError(t, err)
	require.Len(t, inv.Disks, 1)
	assert.Equal(t, a, inv.Disks[0].Name)
	assert.Greater(t, inv.CPU.Count, 0)
	assert.NotEmpty(t, inv.CPU.Architecture)
	assert.Greater(t, inv.Memory.Total, int64(0))
	assert.GreaterOrEqual(t, inv.Memory.PhysicalMB*(1<<20), inv.Memory.Total)
	assert.Contains(t, []string{"bios", "uefi"}, inv.Boot.CurrentBootMode)
	require.NotNil(t, inv.Boot.PXEInterface)

	// The JSON carries every key Ironic and the inspector read.
	raw, err := json.Marshal(inv)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	for _, k := range []string{"interfaces", "cpu", "disks", "memory", "bmc_address", "bmc_v6address", "system_vendor", "boot", "hostname"} {
		assert.Contains(t, m, k)
	}
	disk := m["disks"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "model", "size", "rotational", "wwn", "serial", "vendor", "wwn_with_extension", "wwn_vendor_extension", "hctl", "by_path", "logical_sectors", "physical_sectors", "tran"} {
		assert.Contains(t, disk, k)
	}
	data := InspectionData(ctx, inv, []string{"default", "logs", "pci-devices"})
	assert.Equal(t, "01-02-fc-00-00-00-01", data["boot_interface"])
	assert.Nil(t, data["error"])
	assert.NotNil(t, data["pci_devices"])
	_, hasRoot := data["root_disk"]
	assert.False(t, hasRoot, "no disk of 4 GiB among the named ones: no root_disk, as IPA omits it")
}

func TestMissingSysfsStillAnswers(t *testing.T) {
	inv, err := Collect(context.Background(), WithRoot(t.TempDir()))
	require.NoError(t, err)
	assert.NotNil(t, inv.Interfaces)
	assert.NotNil(t, inv.Disks)
	assert.Equal(t, "bios", inv.Boot.CurrentBootMode)
}

func BenchmarkCollect(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := Collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
