package inventory

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func collectSnapshot(t *testing.T, name string, opts ...Option) *Inventory {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "snapshots", name+".tar.gz"))
	require.NoError(t, err)
	defer f.Close()
	dir := t.TempDir()
	require.NoError(t, Unpack(f, dir))
	inv, err := Collect(context.Background(), append([]Option{WithRoot(dir), WithSkipBMC(true)}, opts...)...)
	require.NoError(t, err)
	return inv
}

// wantDisk is what IPA reports for a disk (lsblk and udev's values).
type wantDisk struct {
	name, model, serial, wwn, vendor, hctl, tran string
	size                                         int64
	rotational                                   bool
}

func str0(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestMachineShapes reads snapshots of QEMU guests (made by
// testdata/gen: goipa's ramdisk with Debian's kernel, each guest's /sys
// and /proc as the inventory reads them) and checks, field by field,
// what IPA would report for the same machine.
func TestMachineShapes(t *testing.T) {
	tests := []struct {
		shape  string
		boot   string
		fw     string
		disks  []wantDisk
		nics   map[string]string // MAC -> driver
		vendor map[string]string // MAC -> PCI vendor
	}{
		{
			shape: "bios-virtio-scsi-nvme", boot: "bios", fw: "SeaBIOS",
			disks: []wantDisk{
				{name: "/dev/nvme0n1", model: "QEMU NVMe Ctrl", serial: "goipa-nvme-0", wwn: "nvme.1b36-676f6970612d6e766d652d30-51454d55204e564d65204374726c-00000001", tran: "nvme", size: 3 << 30},
				{name: "/dev/sda", model: "QEMU HARDDISK", serial: "goipa-scsi-0", vendor: "QEMU", hctl: "0:0:0:0", size: 2 << 30, rotational: true},
				{name: "/dev/vda", serial: "goipa-vd-0", vendor: "0x1af4", tran: "virtio", size: 1 << 30, rotational: true},
			},
			nics:   map[string]string{"52:54:00:00:00:01": "virtio_net", "52:54:00:00:00:02": "virtio_net"},
			vendor: map[string]string{"52:54:00:00:00:01": "0x1af4", "52:54:00:00:00:02": "0x1af4"},
		},
		{
			shape: "uefi-ahci-nvme-e1000e", boot: "uefi", fw: "EFI Development Kit II / OVMF",
			disks: []wantDisk{
				{name: "/dev/nvme0n1", model: "QEMU NVMe Ctrl", serial: "goipa-nvme-0", wwn: "nvme.1b36-676f6970612d6e766d652d30-51454d55204e564d65204374726c-00000001", tran: "nvme", size: 3 << 30},
				{name: "/dev/sda", model: "GOIPA SATA SSD", serial: "goipa-sata-0", vendor: "ATA", hctl: "0:0:0:0", tran: "sata", size: 4 << 30},
			},
			nics:   map[string]string{"52:54:00:00:00:01": "virtio_net", "52:54:00:00:00:02": "e1000e"},
			vendor: map[string]string{"52:54:00:00:00:01": "0x1af4", "52:54:00:00:00:02": "0x8086"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			inv := collectSnapshot(t, tt.shape, WithBootIF("01-52-54-00-00-00-01"))
			assert.Equal(t, tt.boot, inv.Boot.CurrentBootMode)
			assert.Equal(t, "01-52-54-00-00-00-01", str0(inv.Boot.PXEInterface))
			assert.Equal(t, tt.fw, inv.SystemVendor.Firmware.Vendor)
			assert.Equal(t, "QEMU", inv.SystemVendor.Manufacturer)
			assert.Equal(t, 2, inv.CPU.Count)
			assert.Equal(t, "x86_64", inv.CPU.Architecture)
			assert.Contains(t, inv.CPU.Flags, "lm")
			assert.Equal(t, int64(1536), inv.Memory.PhysicalMB, "physical_mb from the DMI memory devices")
			assert.Greater(t, inv.Memory.Total, int64(1400<<20))

			require.Len(t, inv.Disks, len(tt.disks))
			for i, w := range tt.disks {
				d := inv.Disks[i]
				assert.Equal(t, w.name, d.Name)
				assert.Equal(t, w.size, d.Size, w.name)
				assert.Equal(t, w.rotational, d.Rotational, "%s rotational", w.name)
				assert.Equal(t, w.model, str0(d.Model), "%s model", w.name)
				assert.Equal(t, w.serial, str0(d.Serial), "%s serial (without udev: sysfs, or SCSI VPD page 0x80)", w.name)
				assert.Equal(t, w.wwn, str0(d.WWN), "%s wwn (a T10 vendor id is no WWN)", w.name)
				assert.Equal(t, w.vendor, str0(d.Vendor), "%s vendor", w.name)
				assert.Equal(t, w.hctl, str0(d.HCTL), "%s hctl", w.name)
				if w.tran != "" {
					assert.Equal(t, w.tran, str0(d.Tran), "%s tran", w.name)
				}
				assert.Equal(t, 512, d.LogicalSectors)
			}

			require.Len(t, inv.Interfaces, len(tt.nics))
			for _, n := range inv.Interfaces {
				drv, ok := tt.nics[n.MACAddress]
				require.True(t, ok, "unexpected NIC %s", n.MACAddress)
				assert.Equal(t, drv, str0(n.Driver), n.MACAddress)
				assert.Equal(t, tt.vendor[n.MACAddress], str0(n.Vendor), n.MACAddress)
				assert.Equal(t, n.MACAddress == "52:54:00:00:00:01", n.PXEEnabled, "pxe_enabled follows BOOTIF")
			}
			assert.Empty(t, inv.Accelerators, "QEMU's VGA is no GPU")
		})
	}
}

// TestSnapshotRoundTrip snapshots this machine and reads the snapshot
// back: the inventory from it matches the live one.
func TestSnapshotRoundTrip(t *testing.T) {
	testenv.NeedRoot(t)
	ctx := context.Background()
	var buf bytes.Buffer
	require.NoError(t, Snapshot(ctx, &buf))
	dir := t.TempDir()
	require.NoError(t, Unpack(bytes.NewReader(buf.Bytes()), dir))
	live, err := Collect(ctx, WithSkipBMC(true))
	require.NoError(t, err)
	snap, err := Collect(ctx, WithRoot(dir), WithSkipBMC(true))
	require.NoError(t, err)
	assert.Equal(t, live.CPU.Count, snap.CPU.Count)
	assert.Equal(t, live.CPU.ModelName, snap.CPU.ModelName)
	assert.Equal(t, live.Memory.Total, snap.Memory.Total)
	require.Equal(t, len(live.Disks), len(snap.Disks))
	for i := range live.Disks {
		assert.Equal(t, live.Disks[i].Name, snap.Disks[i].Name)
		assert.Equal(t, live.Disks[i].Size, snap.Disks[i].Size)
		assert.Equal(t, str0(live.Disks[i].Serial), str0(snap.Disks[i].Serial))
	}
	require.Equal(t, len(live.Interfaces), len(snap.Interfaces))
	for i := range live.Interfaces {
		assert.Equal(t, live.Interfaces[i].MACAddress, snap.Interfaces[i].MACAddress)
	}
	assert.Equal(t, live.Boot.CurrentBootMode, snap.Boot.CurrentBootMode)
}

func TestUnpackRefusesAbsoluteLinks(t *testing.T) {
	var buf bytes.Buffer
	// A tar with one symlink pointing out of the snapshot.
	require.NoError(t, writeTestTar(&buf, "sys/block/sda", "/etc/passwd"))
	assert.ErrorContains(t, Unpack(&buf, t.TempDir()), "absolute link")
}

func writeTestTar(w *bytes.Buffer, name, link string) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: link, Mode: 0o777}); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
