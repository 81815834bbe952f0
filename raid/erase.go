package raid

import (
	"log/slog"

	"github.com/goipa/goipa/inventory"
)

// SkipListError is a properties.skip_block_devices entry that is not a
// valid device hint.
type SkipListError struct{ Err error }

func (e *SkipListError) Error() string { return "skip_block_devices: " + e.Err.Error() }

func (e *SkipListError) Unwrap() error { return e.Err }

// eraseTargets is EraseTargets with the md lookups given: member says
// whether a disk is an md member, volume names a running array.
func eraseTargets(disks []inventory.Disk, node map[string]any, member func(string) bool, volume func(string) string, log *slog.Logger) ([]inventory.Disk, error) {
	var skips []map[string]any
	props, _ := node["properties"].(map[string]any)
	list, _ := props["skip_block_devices"].([]any)
	for _, s := range list {
		if m, ok := s.(map[string]any); ok {
			if _, vol := m["volume_name"]; vol {
				continue // RAID volumes: kept below by name
			}
			skips = append(skips, m)
		}
	}
	keepVolumes := SkipVolumeNames(node)
	var out []inventory.Disk
	for _, d := range disks {
		// IPA never erases a RAID member as a plain disk (the array is
		// erased as a whole), and keeps arrays named on the skip list.
		if member(d.Name) {
			log.Info("erase: skipping software RAID member", "device", d.Name)
			continue
		}
		if name := volume(d.Name); name != "" && keepVolumes[name] {
			log.Info("erase: skipping software RAID volume on the skip list", "device", d.Name, "volume_name", name)
			continue
		}
		skip := d.ReadOnly
		for _, s := range skips {
			if ok, err := inventory.Matches(d, s); err != nil {
				return nil, &SkipListError{Err: err}
			} else if ok {
				skip = true
			}
		}
		if skip {
			log.Info("erase: skipping device", "device", d.Name, "read_only", d.ReadOnly)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}
