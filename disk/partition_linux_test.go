package disk

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// TestMakePartitions lays out partition-image disks on loop devices and
// checks them with sgdisk, sfdisk and blkid.
func TestMakePartitions(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "sfdisk", "blkid")
	ctx := context.Background()

	t.Run("gpt uefi", func(t *testing.T) {
		dev, _ := loop(t, 256<<20)
		parts, err := MakePartitions(ctx, dev, PartitionLayout{Label: "gpt", UEFI: true, ESPMiB: 40, SwapMiB: 16, ConfigDriveMiB: 2, EphemeralMiB: 8, RootMiB: 100})
		require.NoError(t, err)
		p := run(t, "sgdisk", "-p", dev)
		for _, want := range []string{"EF00", "8300", "8200"} {
			assert.Contains(t, p, want, "sgdisk -p:\n%s", p)
		}
		assert.Contains(t, run(t, "sgdisk", "-v", dev), "No problems found")
		order := []PartitionRole{RoleESP, RoleEphemeral, RoleSwap, RoleConfigDrive, RoleRoot}
		for i, r := range order {
			assert.Equal(t, i+1, parts[r].Number, "%s is partition %d", r, i+1)
		}
		assert.Equal(t, int64(1<<20), parts[RoleESP].Start, "aligned at 1 MiB")
		assert.Equal(t, int64(100<<20), parts[RoleRoot].Size)
		esp := PartitionPath(dev, 1)
		waitFor(t, esp)
		assert.Equal(t, "vfat", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "TYPE", esp)))
		assert.Equal(t, "efi-part", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "LABEL", esp)))
		swap := PartitionPath(dev, 3)
		waitFor(t, swap)
		assert.Equal(t, "swap", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "TYPE", swap)))
		assert.Equal(t, "swap1", strings.TrimSpace(run(t, "blkid", "-o", "value", "-s", "LABEL", swap)))
	})

	t.Run("msdos bios", func(t *testing.T) {
		dev, _ := loop(t, 128<<20)
		parts, err := MakePartitions(ctx, dev, PartitionLayout{Label: "msdos", SwapMiB: 16, RootMiB: 64})
		require.NoError(t, err)
		d := run(t, "sfdisk", "-d", dev)
		assert.Contains(t, d, "type=82")
		assert.Regexp(t, `p2 : start=\s*34816, size=\s*131072, type=83, bootable`, d, "root last, bootable:\n%s", d)
		assert.Equal(t, 2, parts[RoleRoot].Number)
		_, hasBIOSBoot := parts[RoleBIOSBoot]
		assert.False(t, hasBIOSBoot, "no BIOS boot partition on an MBR")
	})

	t.Run("gpt bios", func(t *testing.T) {
		dev, _ := loop(t, 128<<20)
		parts, err := MakePartitions(ctx, dev, PartitionLayout{Label: "gpt", RootMiB: 64})
		require.NoError(t, err)
		assert.Contains(t, run(t, "sgdisk", "-p", dev), "EF02", "a BIOS boot partition for grub")
		assert.Equal(t, 2, parts[RoleRoot].Number)
	})

	t.Run("errors", func(t *testing.T) {
		dev, _ := loop(t, 64<<20)
		_, err := MakePartitions(ctx, dev, PartitionLayout{Label: "gpt", RootMiB: 100})
		assert.ErrorContains(t, err, "more than the disk's 64 MiB")
		_, err = MakePartitions(ctx, dev, PartitionLayout{Label: "msdos", SwapMiB: 1, EphemeralMiB: 1, ConfigDriveMiB: 1, UEFI: true, ESPMiB: 1, RootMiB: 1})
		assert.ErrorContains(t, err, "four primaries")
		_, err = MakePartitions(ctx, dev, PartitionLayout{Label: "sun", RootMiB: 1})
		assert.ErrorContains(t, err, "disk label")
	})
}
