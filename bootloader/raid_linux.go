package bootloader

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/mdraid"
	"github.com/goipa/goipa/raid"
)

// setupRAIDESP is install_bootloader's UEFI path for a software RAID
// root (IPA's prepare_boot_partitions_for_softraid and manage_uefi): an
// ESP partition is added on every holder in the 550 MiB create_
// configuration left free, the ESPs are mirrored by an md RAID-1 with
// the superblock at the end (metadata 1.0, named "esp") so firmware
// reads each as plain FAT, the image's ESP is copied onto the mirror
// (label and volume id kept) and wiped where it was, and every holder's
// ESP gets a boot entry per loader, labelled "(RAID, part<i>)".
func setupRAIDESP(ctx context.Context, device string, table disk.Table, esp disk.Partition, loaders []efi.Loader, nv NVRAM, log *slog.Logger) (bool, error) {
	fail := func(format string, a ...any) (bool, error) {
		return false, &UEFIError{Device: device, RAID: true, Err: fmt.Errorf(format, a...)}
	}
	arrays, err := mdraid.Arrays()
	if err != nil {
		return fail("%v", err)
	}
	var holders []string
	var espArray *mdraid.Array
	for i, ar := range arrays {
		if ar.Device == device {
			for _, m := range ar.Members {
				holders = append(holders, mdraid.HolderDisk(m))
			}
		}
		if raid.VolumeName(ar.Device) == "esp" {
			espArray = &arrays[i]
		}
	}
	if len(holders) == 0 {
		return fail("no members found")
	}
	sort.Strings(holders)
	if espArray == nil {
		var members []string
		for i, h := range holders {
			t, err := disk.ReadTable(h)
			if err != nil {
				return fail("%v", err)
			}
			n := 1
			for _, p := range t.Partitions {
				n = max(n, p.Number+1)
			}
			span := mdraid.Span{Number: n, Start: 1 << 20, End: (mdraid.ESPMiB + 1) << 20}
			if _, err := mdraid.AddPartition(ctx, h, span, ESPType, fmt.Sprintf("uefi-holder-%d", i)); err != nil {
				return fail("adding an ESP to %s: %v", h, err)
			}
			members = append(members, disk.PartitionPath(h, n))
		}
		idx := 0
		for raid.InUse(idx) {
			idx++
		}
		created, err := mdraid.Create(ctx, idx, mdraid.Spec{Name: "esp", Level: 1, Metadata: mdraid.Metadata10}, members)
		if err != nil {
			return fail("mirroring the ESPs: %v", err)
		}
		log.Info("software RAID: ESP mirror created", "device", created.Device, "members", strings.Join(members, ","))
		espArray = &mdraid.Array{Device: created.Device, Members: members}
	}
	if err := copyESP(device, esp, table.SectorSize, espArray.Device); err != nil {
		return fail("copying the ESP to %s: %v", espArray.Device, err)
	}
	// The image's own ESP on the array would be a second, stale ESP.
	if f, err := os.OpenFile(device, os.O_RDWR, 0); err == nil {
		err = disk.ZeroRange(f, esp.Start, min(esp.Size, 1<<20))
		f.Close()
		if err != nil {
			return fail("wiping the image's ESP: %v", err)
		}
	}
	for i, m := range espArray.Members {
		h := mdraid.HolderDisk(m)
		t, err := disk.ReadTable(h)
		if err != nil {
			return fail("%v", err)
		}
		var part disk.Partition
		for _, p := range t.Partitions {
			if disk.PartitionPath(h, p.Number) == m {
				part = p
			}
		}
		guid, err := efi.ParseGUID(part.UUID)
		if err != nil {
			return fail("ESP %s: %v", m, err)
		}
		lbs := uint64(t.SectorSize)
		hd := efi.HardDrive(uint32(part.Number), uint64(part.Start)/lbs, uint64(part.Size)/lbs, true, guid, 0)
		for _, l := range loaders {
			opt := efi.LoadOption{Attributes: efi.LoadOptionActive, Description: fmt.Sprintf("%s (RAID, part%d)", l.Label, i), Path: efi.DevicePath{hd, efi.FilePath(l.Path)}}
			if nv.Simulate {
				log.Info("simulated: would add a UEFI boot entry (host agent)", "label", opt.Description, "path", opt.Path.String())
				continue
			}
			if err := ReplaceBootEntry(nv.Vars, opt); err != nil {
				return fail("%v", err)
			}
			log.Info("UEFI boot entry added", "label", opt.Description, "path", opt.Path.String())
		}
	}
	return true, nil
}

// copyESP formats dst (the ESP mirror) as FAT32 with the source ESP's
// label and volume id, and copies the source's files into it.
func copyESP(device string, esp disk.Partition, sectorSize int, dst string) error {
	src, err := os.Open(device)
	if err != nil {
		return err
	}
	defer src.Close()
	boot := make([]byte, 512)
	if _, err := src.ReadAt(boot, esp.Start); err != nil {
		return err
	}
	label, id := "esp", []byte(nil)
	switch {
	case string(boot[82:87]) == "FAT32":
		label, id = strings.TrimSpace(string(boot[71:82])), boot[67:71]
	case string(boot[54:57]) == "FAT":
		label, id = strings.TrimSpace(string(boot[43:54])), boot[39:43]
	}
	if label == "" || label == "NO NAME" {
		label = "esp"
	}
	fsys, err := disk.ReadFAT(src, esp, sectorSize)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	size, err := disk.DeviceSize(out)
	if err != nil {
		return err
	}
	to, err := fat32.Create(file.New(out, false), size, 0, 512, label, false)
	if err != nil {
		return fmt.Errorf("formatting: %w", err)
	}
	err = fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if e.IsDir() {
			return to.Mkdir("/" + p)
		}
		r, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		w, err := to.OpenFile("/"+p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return w.Close()
	})
	if err != nil {
		return err
	}
	if id != nil {
		// Keep the volume id fstab's UUID= names; FAT32 keeps a backup
		// boot sector at sector 6.
		for _, sec := range []int64{0, 6} {
			if _, err := out.WriteAt(id, sec*512+67); err != nil {
				return err
			}
		}
	}
	return out.Sync()
}
