package inventory

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// multipathSysfs writes the sysfs of a machine with one LUN reached
// through sda and sdb (assembled as dm-0, uuid mpath-<wwid>) and a plain
// virtio disk, as QEMU's guest in TestMultipathInQEMU shows it.
func multipathSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, v string) {
		t.Helper()
		p = filepath.Join(root, "sys/block", p)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o644))
	}
	for name, devno := range map[string]string{"sda": "8:0", "sdb": "8:16"} {
		write(name+"/size", "524288")
		write(name+"/dev", devno)
		write(name+"/device/model", "QEMU HARDDISK")
		write(name+"/device/vendor", "QEMU")
		write(name+"/device/wwid", "naa.5000c500a1b2c3d4")
		write(name+"/holders/dm-0/.keep", "")
	}
	write("dm-0/size", "524288")
	write("dm-0/dev", "254:0")
	write("dm-0/queue/logical_block_size", "512")
	write("dm-0/queue/physical_block_size", "512")
	write("dm-0/dm/name", "35000c500a1b2c3d4")
	write("dm-0/dm/uuid", "mpath-35000c500a1b2c3d4")
	write("dm-0/slaves/sda/.keep", "")
	write("dm-0/slaves/sdb/.keep", "")
	// Another device-mapper device (LVM): IPA lists no such thing.
	write("dm-1/size", "2048")
	write("dm-1/dm/uuid", "LVM-abc")
	write("vda/size", "131072")
	write("vda/dev", "253:0")
	return root
}

func TestMultipathMapListedOnceAsIPAReportsIt(t *testing.T) {
	root := multipathSysfs(t)
	disks, err := BlockDevices(context.Background(), WithRoot(root))
	require.NoError(t, err)
	var names []string
	for _, d := range disks {
		names = append(names, d.Name)
	}
	assert.Equal(t, []string{"/dev/dm-0", "/dev/vda"}, names, "the map once, its paths and other dm devices not at all")
	m := disks[0]
	assert.Equal(t, "35000c500a1b2c3d4", deref(m.Serial), "serial: DM_SERIAL, the WWID")
	assert.Equal(t, "0x5000c500a1b2c3d4", deref(m.WWN), "wwn: DM_WWN")
	assert.Nil(t, m.WWNWithExtension)
	assert.Nil(t, m.ByPath, "udev makes no by-path link for dm-*")
	assert.Nil(t, m.HCTL)
	assert.Nil(t, m.Model)
	assert.Nil(t, m.Vendor)
	assert.Nil(t, m.Tran)
	assert.Equal(t, int64(524288*512), m.Size)

	// goipa-devices naming a path lists the map.
	disks, err = BlockDevices(context.Background(), WithRoot(root), WithDevices([]string{"/dev/sdb", "/dev/dm-0"}))
	require.NoError(t, err)
	require.Len(t, disks, 1)
	assert.Equal(t, "/dev/dm-0", disks[0].Name)

	// Root device hints by the map's serial or wwn select it; a path's
	// name selects nothing.
	disks, err = BlockDevices(context.Background(), WithRoot(root))
	require.NoError(t, err)
	for _, hints := range []map[string]any{{"serial": "35000c500a1b2c3d4"}, {"wwn": "0x5000c500a1b2c3d4"}, {"name": "/dev/dm-0", "size": "<= 1"}} {
		d, err := SelectRootDisk(disks, hints)
		if assert.NoError(t, err, "%v", hints) {
			assert.Equal(t, "/dev/dm-0", d.Name, "%v", hints)
		}
	}
	_, err = SelectRootDisk(disks, map[string]any{"name": "/dev/sda"})
	assert.Error(t, err)
}
