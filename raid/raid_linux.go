package raid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/mdraid"
)

// IsArrayName reports whether dev names an md array (/dev/mdN).
func IsArrayName(dev string) bool {
	k := filepath.Base(dev)
	_, err := strconv.Atoi(strings.TrimPrefix(k, "md"))
	return strings.HasPrefix(k, "md") && err == nil
}

// Candidates are the whole disks software RAID may use: the inventory's
// list without md arrays themselves and read-only devices.
func Candidates(all []inventory.Disk) []inventory.Disk {
	var out []inventory.Disk
	for _, d := range all {
		if IsArrayName(d.Name) || d.ReadOnly {
			continue
		}
		out = append(out, d)
	}
	return out
}

// Layout is how the holders are partitioned: the boot mode ("uefi" or
// "bios") and disk label ("gpt" or "msdos") the instance will have.
type Layout struct {
	BootMode, Label string
}

// Create is IPA's create_configuration for a config that asks for
// software RAID: validate, keep the volumes the node's skip list names,
// partition the holders among disks and build the arrays. Every error
// is an *Error.
func Create(ctx context.Context, disks []inventory.Disk, cfg, node map[string]any, lay Layout, log *slog.Logger) error {
	lds, err := Validate(cfg, node, len(disks))
	if err != nil {
		return err
	}
	// Volumes named on the skip list that exist already are kept and not
	// made again; any other existing array is in the way (IPA's rule).
	keep := SkipVolumeNames(node)
	arrays, _ := mdraid.Arrays()
	kept := map[string]bool{}
	for _, ar := range arrays {
		name := arrayVolumeName(ar)
		if keep[name] && name != "" {
			kept[name] = true
			continue
		}
		return softwareRAIDError("Existing Software RAID device %s (volume name %q) detected that should not be there; run delete_configuration first", ar.Device, name)
	}
	var todo []logicalDisk
	for _, ld := range lds {
		if ld.hasVolumeName && kept[ld.volumeName] {
			log.Info("create_configuration: volume kept from the skip list", "volume_name", ld.volumeName)
			continue
		}
		todo = append(todo, ld)
	}
	if len(todo) == 0 {
		return nil
	}
	holders, err := holders(disks, todo)
	if err != nil {
		return err
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
		return softwareRAIDError("Partitions detected on devices %s during RAID config", strings.Join(withParts, ", "))
	}
	bootMode, label := lay.BootMode, lay.Label
	plan := make([]mdraid.LogicalDisk, len(todo))
	for i, ld := range todo {
		plan[i] = mdraid.LogicalDisk{SizeGiB: ld.sizeGiB, Disks: ld.holders}
	}
	layout, err := mdraid.Plan(bootMode, label, 512, sizes, plan)
	if err != nil {
		return softwareRAIDError("%v", err)
	}
	if !mdraid.DriverLoaded() {
		return softwareRAIDError("%v", mdraid.NoDriverError{})
	}
	// Everything is checked: from here on disks are written.
	for _, h := range holders {
		if err := disk.CheckSafe(ctx, h); err != nil {
			return softwareRAIDError("%s cannot be used: %v", h, err)
		}
	}
	hosts := sortedKeys(layout.Holders)
	for _, h := range hosts {
		log.Info("software RAID: partitioning holder", "disk", h, "label", label, "boot_mode", bootMode, "partitions", fmt.Sprint(layout.Holders[h]))
		if err := mdraid.WriteTable(ctx, h, label, layout.Holders[h]); err != nil {
			return softwareRAIDError("Failed to create partitions on %s: %v", h, err)
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
			return softwareRAIDError("Failed to create md device /dev/md%d on %s: %v", i, strings.Join(members, " "), err)
		}
		log.Info("software RAID created", "device", created.Device, "level", ld.level, "name", name, "uuid", created.UUID, "members", strings.Join(members, ","))
	}
	logMDStat(log.Info)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// arrayVolumeName reads a running array's volume name from a member's
// superblock (IPA asks mdadm --detail for it).
func arrayVolumeName(ar mdraid.Array) string {
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

// Delete is IPA's delete_configuration over disks (Candidates): arrays
// on them are assembled first, then every array not kept by a
// volume_name on the node's skip list is wiped, stopped, its members'
// superblocks zeroed and its holder disks' partition tables removed;
// then any superblock left on any disk or partition is zeroed. Every
// error is an *Error.
func Delete(ctx context.Context, disks []inventory.Disk, node map[string]any, log *slog.Logger) error {
	Assemble(ctx, disks, log)
	keep := SkipVolumeNames(node)
	// Only arrays built on these disks: on a host (goipa-devices) the
	// host's own arrays are not ours to list, stop or wipe.
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = d.Name
	}
	arrays, err := mdraid.ArraysOn(names)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return softwareRAIDError("listing md devices: %v", err)
	}
	keepDisks := map[string]bool{}
	var holders []string
	for _, ar := range arrays {
		name := arrayVolumeName(ar)
		if keep[name] && name != "" {
			for _, m := range ar.Members {
				keepDisks[mdraid.HolderDisk(m)] = true
			}
			log.Warn("Software RAID device is not deleted: its volume name is on the skip list", "device", ar.Device, "volume_name", name)
			continue
		}
		log.Info("deleting Software RAID device", "device", ar.Device, "members", strings.Join(ar.Members, ","))
		if ar.Sectors > 0 {
			if err := disk.WipeMetadata(ctx, ar.Device); err != nil {
				log.Warn("wiping the md device's signatures failed", "device", ar.Device, "error", err)
			}
		}
		if err := mdraid.Stop(ctx, ar.Device); err != nil {
			return softwareRAIDError("Failed to stop %s: %v", ar.Device, err)
		}
		for _, m := range ar.Members {
			if err := mdraid.ZeroSuperblock(m); err != nil {
				return softwareRAIDError("Failed to remove the superblock from %s: %v", m, err)
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
					return softwareRAIDError("Failed to remove the superblock from %s: %v", parts[i], err)
				}
				if !contains(holders, d.Name) {
					holders = append(holders, d.Name)
				}
			}
		}
		if _, _, err := mdraid.Examine(d.Name); err == nil {
			if err := mdraid.ZeroSuperblock(d.Name); err != nil {
				return softwareRAIDError("Failed to remove the superblock from %s: %v", d.Name, err)
			}
		}
	}
	for _, h := range holders {
		if keepDisks[h] {
			continue
		}
		log.Info("removing partitions on holder disk", "disk", h)
		if err := disk.WipeMetadata(ctx, h); err != nil {
			log.Warn("removing partitions on holder disk failed", "disk", h, "error", err)
		}
	}
	return nil
}

// Assemble groups the superblocks found on disks and their
// partitions by array and assembles each array not running yet, under
// /dev/mdN when its name is mdN and that is free, else from md127 down
// as mdadm names foreign arrays.
func Assemble(ctx context.Context, disks []inventory.Disk, log *slog.Logger) {
	type group struct {
		minor   int
		name    string
		members []string
	}
	groups := map[[16]byte]*group{}
	var order [][16]byte
	for _, d := range disks {
		if IsArrayName(d.Name) {
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
		if n, err := strconv.Atoi(strings.TrimPrefix(g.name, "md")); err == nil && strings.HasPrefix(g.name, "md") && n >= 0 && !InUse(n) {
			idx = n
		}
		for n := 127; idx < 0 && n >= 0; n-- {
			if !InUse(n) {
				idx = n
			}
		}
		dev, err := mdraid.Assemble(ctx, idx, g.minor, g.members)
		if err != nil {
			log.Error("software RAID: assembling failed", "name", g.name, "members", strings.Join(g.members, ","), "error", err)
			continue
		}
		log.Info("software RAID assembled", "device", dev, "name", g.name, "members", strings.Join(g.members, ","))
	}
	if len(order) > 0 {
		logMDStat(log.Info)
	}
}

// held reports whether a block device already belongs to a running
// array (or another holder).
func held(dev string) bool {
	k := strings.TrimPrefix(dev, "/dev/")
	ents, _ := os.ReadDir("/sys/class/block/" + k + "/holders")
	return len(ents) > 0
}

// InUse reports whether /dev/mdN exists.
func InUse(n int) bool {
	_, err := os.Stat(fmt.Sprintf("/sys/block/md%d", n))
	return err == nil
}

// IsMember is the erase steps' IPA rule: a disk that is (or has a
// partition that is) an md member is never erased as a plain disk.
func IsMember(dev string) bool {
	if IsArrayName(dev) {
		return false
	}
	return mdraid.IsMember(dev)
}

// VolumeName is the volume name of a running md array, "" for any
// other device.
func VolumeName(dev string) string {
	if !IsArrayName(dev) {
		return ""
	}
	arrays, _ := mdraid.Arrays()
	for _, ar := range arrays {
		if ar.Device == dev {
			return arrayVolumeName(ar)
		}
	}
	return ""
}

// EraseTargets are the disks an erase (or disk burn-in) step may touch,
// as IPA picks them: not md members (an array is erased whole), not
// arrays whose volume_name properties.skip_block_devices keeps, not
// read-only devices, not devices the skip list's hints match (a bad
// hint is a *SkipListError).
func EraseTargets(disks []inventory.Disk, node map[string]any, log *slog.Logger) ([]inventory.Disk, error) {
	return eraseTargets(disks, node, IsMember, VolumeName, log)
}
