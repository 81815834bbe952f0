package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/efi"
	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/mdraid"
)

// createConfiguration is IPA's create_configuration: the node's
// target_raid_config, or {} when it asks for no software RAID.
func (a *Agent) createConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	cfg, _ := sc.Node["target_raid_config"].(map[string]any)
	if len(cfg) == 0 {
		sc.Log.Info("create_configuration: no target_raid_config")
		return map[string]any{}, nil
	}
	return a.doCreateConfiguration(ctx, sc, cfg)
}

// applyConfiguration is IPA's apply_configuration deploy step.
func (a *Agent) applyConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	cfg, ok := sc.Args["raid_config"].(map[string]any)
	if !ok {
		return nil, ErrInvalidParams("raid_config is required and must be an object, got %v", sc.Args["raid_config"])
	}
	del, err := deleteExisting(sc.Args)
	if err != nil {
		return nil, err
	}
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := validateRAIDConfig(cfg, sc.Node, len(disks)); err != nil {
		return nil, err
	}
	if del {
		if _, err := a.deleteConfiguration(ctx, sc); err != nil {
			return nil, err
		}
	}
	return a.doCreateConfiguration(ctx, sc, cfg)
}

// raidCandidates are the whole disks software RAID may use: the
// inventory's list without md arrays themselves.
func (a *Agent) raidCandidates(ctx context.Context) ([]inventory.Disk, error) {
	if err := a.mayTouchDisks(); err != nil {
		return nil, err
	}
	all, err := inventory.BlockDevices(ctx, inventory.WithDevices(a.cfg.Devices), inventory.WithLogger(a.log))
	if err != nil {
		return nil, err
	}
	var out []inventory.Disk
	for _, d := range all {
		if isMDName(d.Name) || d.ReadOnly {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func isMDName(dev string) bool {
	k := filepath.Base(dev)
	_, err := strconv.Atoi(strings.TrimPrefix(k, "md"))
	return strings.HasPrefix(k, "md") && err == nil
}

func (a *Agent) doCreateConfiguration(ctx context.Context, sc *StepCall, cfg map[string]any) (any, error) {
	if !hasSoftwareRAID(cfg) {
		sc.Log.Info("create_configuration: no software RAID in the config")
		return map[string]any{}, nil
	}
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	lds, err := validateRAIDConfig(cfg, sc.Node, len(disks))
	if err != nil {
		return nil, err
	}
	// Volumes named on the skip list that exist already are kept and not
	// made again; any other existing array is in the way (IPA's rule).
	keep := skipVolumeNames(sc.Node)
	arrays, _ := mdraid.Arrays()
	kept := map[string]bool{}
	for _, ar := range arrays {
		name := volumeName(ar)
		if keep[name] && name != "" {
			kept[name] = true
			continue
		}
		return nil, softwareRAIDError("Existing Software RAID device %s (volume name %q) detected that should not be there; run delete_configuration first", ar.Device, name)
	}
	var todo []logicalDisk
	for _, ld := range lds {
		if ld.hasVolumeName && kept[ld.volumeName] {
			sc.Log.Info("create_configuration: volume kept from the skip list", "volume_name", ld.volumeName)
			continue
		}
		todo = append(todo, ld)
	}
	if len(todo) == 0 {
		return cfg, nil
	}
	holders, err := raidHolders(disks, todo)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	var withParts []string
	for _, h := range holders {
		for _, d := range disks {
			if d.Name == h {
				sizes[h] = d.Size
			}
		}
		if len(kept) == 0 {
			if t, err := disk.ReadTable(h); err == nil && len(t.Partitions) > 0 {
				withParts = append(withParts, h)
			}
		}
		if mdraid.IsMember(h) && len(kept) == 0 && !contains(withParts, h) {
			withParts = append(withParts, h)
		}
	}
	if len(withParts) > 0 {
		return nil, softwareRAIDError("Partitions detected on devices %s during RAID config", strings.Join(withParts, ", "))
	}
	bootMode := a.partitionBootMode(sc.Node)
	label := partitionDiskLabel(sc.Node, bootMode)
	plan := make([]mdraid.LogicalDisk, len(todo))
	for i, ld := range todo {
		plan[i] = mdraid.LogicalDisk{SizeGiB: ld.sizeGiB, Disks: ld.holders}
	}
	layout, err := mdraid.Plan(bootMode, label, 512, sizes, plan)
	if err != nil {
		return nil, softwareRAIDError("%v", err)
	}
	if !mdraid.DriverLoaded() {
		return nil, softwareRAIDError("%v", mdraid.NoDriverError{})
	}
	// Everything is checked: from here on disks are written.
	for _, h := range holders {
		if err := disk.CheckSafe(ctx, h); err != nil {
			return nil, softwareRAIDError("%s cannot be used: %v", h, err)
		}
	}
	hosts := sortedKeys(layout.Holders)
	for _, h := range hosts {
		sc.Log.Info("software RAID: partitioning holder", "disk", h, "label", label, "boot_mode", bootMode, "partitions", fmt.Sprint(layout.Holders[h]))
		if err := mdraid.WriteTable(ctx, h, label, layout.Holders[h]); err != nil {
			return nil, softwareRAIDError("Failed to create partitions on %s: %v", h, err)
		}
	}
	home, _ := os.Hostname()
	for i, idx := range layout.Order {
		ld := todo[idx]
		var members []string
		for _, m := range layout.Members[i] {
			members = append(members, disk.PartitionPath(m.Disk, m.Number))
		}
		name := ld.volumeName
		if !ld.hasVolumeName {
			name = fmt.Sprintf("md%d", i)
		}
		level, _ := strconv.Atoi(ld.level)
		spec := mdraid.Spec{Name: name, HomeHost: home, Level: level, Metadata: mdraid.Metadata12}
		created, err := mdraid.Create(ctx, i, spec, members)
		if err != nil {
			return nil, softwareRAIDError("Failed to create md device /dev/md%d on %s: %v", i, strings.Join(members, " "), err)
		}
		sc.Log.Info("software RAID created", "device", created.Device, "level", ld.level, "name", name, "uuid", created.UUID, "members", strings.Join(members, ","))
	}
	logMDStat(sc.Log.Info)
	return cfg, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// volumeName reads a running array's volume name from a member's
// superblock (IPA asks mdadm --detail for it).
func volumeName(ar mdraid.Array) string {
	for _, m := range ar.Members {
		if sb, _, err := mdraid.Examine(m); err == nil {
			return sb.VolumeName()
		}
	}
	return ""
}

// logMDStat writes the kernel's view of the arrays to the log, as an
// operator would read /proc/mdstat.
func logMDStat(log func(string, ...any)) {
	b, err := os.ReadFile("/proc/mdstat")
	if err != nil {
		return
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.TrimSpace(l) != "" {
			log("mdstat", "line", l)
		}
	}
}

// deleteConfiguration is IPA's delete_configuration: every array not
// kept by a volume_name on the skip list is wiped, stopped, its members'
// superblocks zeroed and its holder disks' partition tables removed;
// then any superblock left on any disk or partition is zeroed.
func (a *Agent) deleteConfiguration(ctx context.Context, sc *StepCall) (any, error) {
	disks, err := a.raidCandidates(ctx)
	if err != nil {
		return nil, err
	}
	a.assembleFrom(ctx, disks)
	keep := skipVolumeNames(sc.Node)
	arrays, err := mdraid.Arrays()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, softwareRAIDError("listing md devices: %v", err)
	}
	keepDisks := map[string]bool{}
	var holders []string
	for _, ar := range arrays {
		name := volumeName(ar)
		if keep[name] && name != "" {
			for _, m := range ar.Members {
				keepDisks[mdraid.HolderDisk(m)] = true
			}
			sc.Log.Warn("Software RAID device is not deleted: its volume name is on the skip list", "device", ar.Device, "volume_name", name)
			continue
		}
		sc.Log.Info("deleting Software RAID device", "device", ar.Device, "members", strings.Join(ar.Members, ","))
		if ar.Sectors > 0 {
			if err := disk.WipeMetadata(ctx, ar.Device); err != nil {
				sc.Log.Warn("wiping the md device's signatures failed", "device", ar.Device, "error", err)
			}
		}
		if err := mdraid.Stop(ctx, ar.Device); err != nil {
			return nil, softwareRAIDError("Failed to stop %s: %v", ar.Device, err)
		}
		for _, m := range ar.Members {
			if err := mdraid.ZeroSuperblock(m); err != nil {
				return nil, softwareRAIDError("Failed to remove the superblock from %s: %v", m, err)
			}
			if h := mdraid.HolderDisk(m); !contains(holders, h) {
				holders = append(holders, h)
			}
		}
	}
	// Leftovers: members of arrays never assembled (or half-made).
	for _, d := range disks {
		if keepDisks[d.Name] {
			continue
		}
		parts := mdraid.Partitions(d.Name)
		for i := len(parts) - 1; i >= 0; i-- { // partitions first, as IPA
			if _, _, err := mdraid.Examine(parts[i]); err == nil {
				if err := mdraid.ZeroSuperblock(parts[i]); err != nil {
					return nil, softwareRAIDError("Failed to remove the superblock from %s: %v", parts[i], err)
				}
				if !contains(holders, d.Name) {
					holders = append(holders, d.Name)
				}
			}
		}
		if _, _, err := mdraid.Examine(d.Name); err == nil {
			if err := mdraid.ZeroSuperblock(d.Name); err != nil {
				return nil, softwareRAIDError("Failed to remove the superblock from %s: %v", d.Name, err)
			}
		}
	}
	for _, h := range holders {
		if keepDisks[h] {
			continue
		}
		sc.Log.Info("removing partitions on holder disk", "disk", h)
		if err := disk.WipeMetadata(ctx, h); err != nil {
			sc.Log.Warn("removing partitions on holder disk failed", "disk", h, "error", err)
		}
	}
	return nil, nil
}

// assembleExisting starts the arrays whose members are on the disks, as
// IPA's ramdisk does through udev's mdadm rules at boot, so the
// inventory, the install disk and erase see them. Only where goipa owns
// the disks (the ramdisk, or goipa-devices naming them).
func (a *Agent) assembleExisting() {
	if !a.realPower && a.cfg.Power != "system" && len(a.cfg.Devices) == 0 {
		return
	}
	if _, err := os.Stat("/sys/module/md_mod"); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	disks, err := inventory.BlockDevices(ctx, inventory.WithDevices(a.cfg.Devices), inventory.WithLogger(a.log))
	if err != nil {
		return
	}
	a.assembleFrom(ctx, disks)
}

// assembleFrom groups the superblocks found on disks and their
// partitions by array and assembles each array not running yet, under
// /dev/mdN when its name is mdN and that is free, else from md127 down
// as mdadm names foreign arrays.
func (a *Agent) assembleFrom(ctx context.Context, disks []inventory.Disk) {
	type group struct {
		minor   int
		name    string
		members []string
	}
	groups := map[[16]byte]*group{}
	var order [][16]byte
	for _, d := range disks {
		if isMDName(d.Name) {
			continue
		}
		for _, dev := range append(mdraid.Partitions(d.Name), d.Name) {
			if held(dev) {
				continue
			}
			sb, minor, err := mdraid.Examine(dev)
			if err != nil {
				continue
			}
			g := groups[sb.SetUUID]
			if g == nil {
				g = &group{minor: minor, name: sb.VolumeName()}
				groups[sb.SetUUID] = g
				order = append(order, sb.SetUUID)
			}
			g.members = append(g.members, dev)
		}
	}
	for _, id := range order {
		g := groups[id]
		idx := -1
		if n, err := strconv.Atoi(strings.TrimPrefix(g.name, "md")); err == nil && strings.HasPrefix(g.name, "md") && n >= 0 && !mdInUse(n) {
			idx = n
		}
		for n := 127; idx < 0 && n >= 0; n-- {
			if !mdInUse(n) {
				idx = n
			}
		}
		dev, err := mdraid.Assemble(ctx, idx, g.minor, g.members)
		if err != nil {
			a.log.Error("software RAID: assembling failed", "name", g.name, "members", strings.Join(g.members, ","), "error", err)
			continue
		}
		a.log.Info("software RAID assembled", "device", dev, "name", g.name, "members", strings.Join(g.members, ","))
	}
	if len(order) > 0 {
		logMDStat(a.log.Info)
	}
}

// held reports whether a block device already belongs to a running
// array (or another holder).
func held(dev string) bool {
	k := strings.TrimPrefix(dev, "/dev/")
	ents, _ := os.ReadDir("/sys/class/block/" + k + "/holders")
	return len(ents) > 0
}

func mdInUse(n int) bool {
	_, err := os.Stat(fmt.Sprintf("/sys/block/md%d", n))
	return err == nil
}

// raidMember is the erase steps' IPA rule: a disk that is (or has a
// partition that is) an md member is never erased as a plain disk.
func raidMember(dev string) bool {
	if isMDName(dev) {
		return false
	}
	return mdraid.IsMember(dev)
}

// mdVolumeName is the volume name of a running md array, "" for any
// other device.
func mdVolumeName(dev string) string {
	if !isMDName(dev) {
		return ""
	}
	arrays, _ := mdraid.Arrays()
	for _, ar := range arrays {
		if ar.Device == dev {
			return volumeName(ar)
		}
	}
	return ""
}

// setupRAIDESP is install_bootloader's UEFI path for a software RAID
// root (IPA's prepare_boot_partitions_for_softraid and manage_uefi): an
// ESP partition is added on every holder in the 550 MiB create_
// configuration left free, the ESPs are mirrored by an md RAID-1 with
// the superblock at the end (metadata 1.0, named "esp") so firmware
// reads each as plain FAT, the image's ESP is copied onto the mirror
// (label and volume id kept) and wiped where it was, and every holder's
// ESP gets a boot entry per loader, labelled "(RAID, part<i>)".
func (d *deployer) setupRAIDESP(ctx context.Context, c *Call, device string, table disk.Table, esp disk.Partition, loaders []efi.Loader) (bool, error) {
	fail := func(format string, a ...any) (bool, error) {
		return false, &Error{Type: "CommandExecutionError", Code: 500, Message: "Command execution failed",
			Details: fmt.Sprintf("Could not configure UEFI boot on software RAID device %s: %s", device, fmt.Sprintf(format, a...))}
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
		if volumeName(ar) == "esp" {
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
			if _, err := mdraid.AddPartition(ctx, h, span, espType, fmt.Sprintf("uefi-holder-%d", i)); err != nil {
				return fail("adding an ESP to %s: %v", h, err)
			}
			members = append(members, disk.PartitionPath(h, n))
		}
		idx := 0
		for mdInUse(idx) {
			idx++
		}
		created, err := mdraid.Create(ctx, idx, mdraid.Spec{Name: "esp", Level: 1, Metadata: mdraid.Metadata10}, members)
		if err != nil {
			return fail("mirroring the ESPs: %v", err)
		}
		c.Log.Info("software RAID: ESP mirror created", "device", created.Device, "members", strings.Join(members, ","))
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
	vars, real := d.a.efiVars()
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
			if !real {
				c.Log.Info("simulated: would add a UEFI boot entry (host agent)", "label", opt.Description, "path", opt.Path.String())
				continue
			}
			if err := replaceBootEntry(vars, opt); err != nil {
				return fail("%v", err)
			}
			c.Log.Info("UEFI boot entry added", "label", opt.Description, "path", opt.Path.String())
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
