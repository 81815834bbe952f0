package vmedia

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeDev is one block device of a recorded sysfs tree: where the kernel
// puts it (its devices/ path says the transport), what udev-less tools
// read (type, size, model, partition, slaves) and the first bytes of the
// medium (its label).
type fakeDev struct {
	name      string
	devpath   string // below devices/, ending in the block device's directory
	scsiType  string // device/type ("5": rom); empty: no SCSI device
	model     string
	sectors   int64
	partition bool
	slaves    []string
	content   []byte // nil: no medium (open fails)
}

func isoImage(label string) []byte {
	b := make([]byte, 17*2048)
	pvd := b[16*2048:]
	pvd[0] = 1
	copy(pvd[1:6], "CD001")
	copy(pvd[40:72], bytes.Repeat([]byte(" "), 32))
	copy(pvd[40:], label)
	return b
}

func fatImage(label string, fat32 bool) []byte {
	b := make([]byte, 512)
	b[510], b[511] = 0x55, 0xaa
	lab := []byte(label + "           ")[:11]
	if fat32 {
		copy(b[71:], lab)
		copy(b[82:], "FAT32   ")
	} else {
		b[38] = 0x29
		copy(b[43:], lab)
		copy(b[54:], "FAT12   ")
	}
	return b
}

func buildTree(t *testing.T, devs []fakeDev) Finder {
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	require.NoError(t, os.MkdirAll(filepath.Join(sys, "class", "block"), 0o755))
	require.NoError(t, os.MkdirAll(dev, 0o755))
	for _, d := range devs {
		dir := filepath.Join(sys, "devices", d.devpath)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "size"), []byte(strconv.FormatInt(d.sectors, 10)+"\n"), 0o644))
		if d.partition {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644))
		}
		if d.scsiType != "" {
			// block/<name>/device -> the SCSI device two levels up.
			scsi := filepath.Dir(filepath.Dir(dir))
			require.NoError(t, os.WriteFile(filepath.Join(scsi, "type"), []byte(d.scsiType+"\n"), 0o644))
			if d.model != "" {
				require.NoError(t, os.WriteFile(filepath.Join(scsi, "model"), []byte(d.model+"\n"), 0o644))
			}
			require.NoError(t, os.Symlink("../..", filepath.Join(dir, "device")))
		}
		if len(d.slaves) > 0 {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "slaves"), 0o755))
			for _, s := range d.slaves {
				require.NoError(t, os.Symlink("../../"+s, filepath.Join(dir, "slaves", s)))
			}
		}
		rel, err := filepath.Rel(filepath.Join(sys, "class", "block"), dir)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(rel, filepath.Join(sys, "class", "block", d.name)))
		if d.content != nil {
			require.NoError(t, os.WriteFile(filepath.Join(dev, d.name), d.content, 0o644))
		}
	}
	return Finder{SysRoot: sys, DevRoot: dev, Log: slogf(t)}
}

const gib = 1 << 30 / 512 // sectors

var (
	sataCD = func(label string) fakeDev {
		return fakeDev{name: "sr0", devpath: "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sr0", scsiType: "5", sectors: 1 << 20, content: isoImage(label)}
	}
	usbDisk = func(name string, sectors int64, content []byte) fakeDev {
		return fakeDev{name: name, devpath: "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block/" + name, scsiType: "0", model: "Virtual Media", sectors: sectors, content: content}
	}
	sataDisk = func(name string, content []byte) fakeDev {
		return fakeDev{name: name, devpath: "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/" + name, scsiType: "0", sectors: 100 * gib, content: content}
	}
	nvme = fakeDev{name: "nvme0n1", devpath: "pci0000:00/0000:00:03.0/nvme/nvme0/nvme0n1", sectors: 100 * gib, content: isoImage("config-2")}
	// A deployed instance's own config drive: a partition of a fixed
	// disk labelled config-2, exactly what IPA must never read.
	instanceCfgPart = fakeDev{name: "vda1", devpath: "pci0000:00/0000:00:04.0/virtio2/block/vda/vda1", partition: true, sectors: 131072, content: isoImage("config-2")}
	instanceDisk    = fakeDev{name: "vda", devpath: "pci0000:00/0000:00:04.0/virtio2/block/vda", sectors: 20 * gib, content: make([]byte, 40000)}
	usbPartition    = fakeDev{name: "sdc1", devpath: "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host7/target7:0:0/7:0:0:0/block/sdc/sdc1", partition: true, sectors: 1 << 20, content: isoImage("config-2")}
)

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []fakeDev
		want string // device name, "" for none
	}{
		{"SATA CD config-2", []fakeDev{instanceDisk, instanceCfgPart, sataCD("config-2")}, "sr0"},
		{"label in capitals", []fakeDev{sataCD("CONFIG-2")}, "sr0"},
		{"VMEDIA_BOOT_ISO", []fakeDev{sataCD("VMEDIA_BOOT_ISO")}, "sr0"},
		{"vmedia_boot_iso lower case", []fakeDev{sataCD("vmedia_boot_iso")}, "sr0"},
		{"other label", []fakeDev{sataCD("goipa")}, ""},
		{"USB disk under 4 GiB", []fakeDev{usbDisk("sdb", 2*gib, isoImage("config-2"))}, "sdb"},
		{"USB disk of 4 GiB", []fakeDev{usbDisk("sdb", 4*gib, isoImage("config-2"))}, ""},
		{"USB partition", []fakeDev{usbPartition}, ""},
		{"instance's config drive partition only", []fakeDev{instanceDisk, instanceCfgPart}, ""},
		{"fixed SATA disk", []fakeDev{sataDisk("sda", isoImage("config-2"))}, ""},
		{"NVMe", []fakeDev{nvme}, ""},
		{"fixed disks before the CD", []fakeDev{nvme, sataDisk("sda", isoImage("config-2")), sataCD("config-2")}, "sr0"},
		{"device mapper over a small USB disk", []fakeDev{
			usbDisk("sdd", 1*gib, nil),
			{name: "dm-0", devpath: "virtual/block/dm-0", sectors: 1 * gib, slaves: []string{"sdd"}, content: isoImage("config-2")},
		}, "dm-0"},
		{"empty drive", []fakeDev{{name: "sr0", devpath: "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sr0", scsiType: "5", sectors: 0}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := buildTree(t, tc.devs)
			d, ok := f.Find(ISOLabels)
			if tc.want == "" {
				assert.False(t, ok, "found %+v", d)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.want, d.Name)
			assert.Equal(t, filepath.Join(f.DevRoot, tc.want), d.Path)
			assert.Equal(t, FSISO9660, d.FSType)
		})
	}
}

func TestFindFloppy(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []fakeDev
		want string
	}{
		{"labelled FAT12 floppy on USB", []fakeDev{usbDisk("sdb", 2880, fatImage("ir-vfd-dev", false))}, "sdb"},
		{"labelled FAT32", []fakeDev{usbDisk("sdb", 2880, fatImage("IR-VFD-DEV", true))}, "sdb"},
		{"unlabelled, found by its model", []fakeDev{usbDisk("sdb", 2880, fatImage("NO NAME", false))}, "sdb"},
		{"model on a big disk", []fakeDev{usbDisk("sdb", 8*gib, fatImage("", false))}, ""},
		{"nothing", []fakeDev{sataDisk("sda", nil)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := buildTree(t, tc.devs)
			d, ok := f.FindFloppy()
			if tc.want == "" {
				assert.False(t, ok, "found %+v", d)
				return
			}
			require.True(t, ok)
			assert.Equal(t, tc.want, d.Name)
			assert.Equal(t, FSVFAT, d.FSType)
		})
	}
}

func TestReadLabel(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            []byte
		label, fstype string
	}{
		{"iso", isoImage("config-2"), "config-2", FSISO9660},
		{"fat12", fatImage("ir-vfd-dev", false), "ir-vfd-dev", FSVFAT},
		{"fat32", fatImage("BOOT", true), "BOOT", FSVFAT},
		{"fat no name", fatImage("NO NAME", false), "", FSVFAT},
		{"zeros", make([]byte, 40000), "", ""},
		{"short", []byte{1, 2, 3}, "", ""},
	} {
		l, fs := ReadLabel(bytes.NewReader(tc.in))
		assert.Equal(t, tc.label, l, tc.name)
		assert.Equal(t, tc.fstype, fs, tc.name)
	}
}

func FuzzReadLabel(f *testing.F) {
	f.Add(isoImage("config-2"))
	f.Add(fatImage("ir-vfd-dev", false))
	f.Add(fatImage("x", true))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, fs := ReadLabel(bytes.NewReader(b))
		if fs == "" && l != "" {
			t.Fatalf("label %q without a filesystem", l)
		}
	})
}

// slogf logs slog-style (message, key, value, ...) lines through t.
func slogf(t *testing.T) func(string, ...any) {
	return func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) }
}
