package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// TestLayOutPartitionImage: the old table is wiped, the config drive
// lands in its partition, the ephemeral partition gets its filesystem,
// and BlockUUID falls back to the PARTUUID for the still empty root.
func TestLayOutPartitionImage(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "blkid")
	ctx := context.Background()
	dev, _ := loop(t, 256<<20)
	iso := bytes.Repeat([]byte("config-2"), 128<<10) // 1 MiB
	laid, err := LayOutPartitionImage(ctx, dev, PartitionLayout{Label: "gpt", UEFI: true, ESPMiB: 40, EphemeralMiB: 16, ConfigDriveMiB: 1, RootMiB: 100}, iso, "")
	require.NoError(t, err)
	for _, r := range []PartitionRole{RoleESP, RoleEphemeral, RoleConfigDrive, RoleRoot} {
		assert.Equal(t, PartitionPath(dev, laid.Partitions[r].Number), laid.Paths[r], r)
	}
	got := make([]byte, len(iso))
	f, err := os.Open(laid.Paths[RoleConfigDrive])
	require.NoError(t, err)
	_, err = f.ReadAt(got, 0)
	f.Close()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(iso, got), "the config drive is in its partition")
	assert.Equal(t, "ext4", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "TYPE", laid.Paths[RoleEphemeral])))
	assert.Equal(t, "ephemeral0", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "LABEL", laid.Paths[RoleEphemeral])))

	uuid, err := BlockUUID(laid.Paths[RoleRoot], laid.Partitions[RoleRoot])
	require.NoError(t, err)
	assert.Equal(t, strings.ToLower(laid.Partitions[RoleRoot].UUID), uuid, "no filesystem yet: the PARTUUID")
	assert.NotEmpty(t, uuid)
	uuid, err = BlockUUID(laid.Paths[RoleESP], laid.Partitions[RoleESP])
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "UUID", laid.Paths[RoleESP])), uuid, "the filesystem's UUID")
}

// TestWritePartitionImage: the image goes into the root partition, the
// UUIDs are the ones get_partition_uuids reports, and a failed write is
// the error.
func TestWritePartitionImage(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "blkid")
	ctx := context.Background()
	dev, _ := loop(t, 256<<20)
	layout := PartitionLayout{Label: "gpt", UEFI: true, ESPMiB: 40, RootMiB: 100}
	var wrote string
	written, err := WritePartitionImage(ctx, dev, layout, nil, "", func(ctx context.Context, root string) error { wrote = root; return nil })
	require.NoError(t, err)
	assert.Equal(t, written.Paths[RoleRoot], wrote, "the image goes into the root partition")
	assert.Equal(t, strings.ToLower(written.Partitions[RoleRoot].UUID), written.RootUUID)
	assert.Equal(t, strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "UUID", written.Paths[RoleESP])), written.ESPUUID)

	_, err = WritePartitionImage(ctx, dev, PartitionLayout{Label: "msdos", RootMiB: 100}, nil, "", func(ctx context.Context, root string) error { return os.ErrDeadlineExceeded })
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

// TestMapPartitionPath: a dm-multipath map's partition N is its
// kpartx-style device /dev/mapper/<map name>-partN, also through a
// /dev/mapper-style symlink to the map; a device-mapper device of
// another kind and an ordinary disk keep the kernel's naming.
func TestMapPartitionPath(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "sys")
	const wwid = "3600508b400105e210000900000490000"
	for k, uuid := range map[string]string{"dm-3": "mpath-" + wwid + "\n", "dm-4": "LVM-abc\n"} {
		d := filepath.Join(sys, "class/block", k)
		require.NoError(t, os.MkdirAll(filepath.Join(d, "dm"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, "dm/uuid"), []byte(uuid), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(d, "dm/name"), []byte(strings.TrimPrefix(strings.TrimSpace(uuid), "mpath-")+"\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(d, "dev"), []byte("253:"+k[3:]+"\n"), 0o644))
	}
	dev := filepath.Join(dir, "dev")
	require.NoError(t, os.MkdirAll(dev, 0o755))
	for _, k := range []string{"dm-3", "dm-4", "sda"} {
		require.NoError(t, os.WriteFile(filepath.Join(dev, k), nil, 0o644))
	}
	require.NoError(t, os.Symlink("dm-3", filepath.Join(dev, wwid)))
	for _, tc := range []struct {
		device, want string
	}{
		{"dm-3", "/dev/mapper/" + wwid + "-part2"},
		{wwid, "/dev/mapper/" + wwid + "-part2"},
		{"dm-4", ""},
		{"sda", ""},
	} {
		got, ok := mapPartitionPath(sys, filepath.Join(dev, tc.device), 2)
		assert.Equal(t, tc.want != "", ok, tc.device)
		assert.Equal(t, tc.want, got, tc.device)
	}
	m, ok := multipathMapAt(sys, filepath.Join(dev, "dm-3"))
	require.True(t, ok)
	assert.Equal(t, multipathMapDevice{Kernel: "dm-3", Name: wwid, UUID: "mpath-" + wwid, DevNo: "253:3"}, m)
}
