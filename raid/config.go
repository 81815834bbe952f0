// Package raid builds the software RAID that Ironic's target_raid_config
// asks of ironic-python-agent: IPA's validation of the logical disks, its
// choice of holder disks, the holders' partitions and the md arrays
// (through mdraid), deleting them again, assembling arrays found on the
// disks at start-up, and which disks an erase may touch (EraseTargets:
// never a member, never a kept volume), and apply_configuration's
// arguments. The rules are IPA's hardware.py and
// raid_utils.py; errors carry IPA's wording in *Error.
package raid

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/goipa/goipa/inventory"
)

// Error is IPA's SoftwareRAIDError: Details is the message IPA gives.
type Error struct{ Details string }

func (e *Error) Error() string { return e.Details }

func softwareRAIDError(format string, a ...any) *Error {
	return &Error{Details: fmt.Sprintf(format, a...)}
}

// logicalDisk is one entry of a RAID config's logical_disks as the
// software RAID code uses it.
type logicalDisk struct {
	raw           map[string]any
	level         string
	sizeGiB       int // 0: MAX
	controller    string
	volumeName    string
	hasVolumeName bool
	isRoot        *bool
	physical      []map[string]any
	hasPhysical   bool
	holders       []string // filled by Holders
}

// levelString renders raid_level as Ironic's schema spells it ("1",
// "1+0"), whether the JSON carried a string or a number.
func levelString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// parseRAIDConfig reads a raid_config dict. Structural problems that
// IPA would trip over (no logical disks) come back as errors at once.
func parseRAIDConfig(cfg map[string]any) ([]logicalDisk, error) {
	raw, _ := cfg["logical_disks"].([]any)
	if len(raw) == 0 {
		return nil, softwareRAIDError("RAID config contains no logical disks")
	}
	var out []logicalDisk
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, softwareRAIDError("logical disk %d is not an object: %v", i, r)
		}
		controller, _ := m["controller"].(string)
		ld := logicalDisk{raw: m, level: levelString(m["raid_level"]), controller: controller}
		switch s := m["size_gb"].(type) {
		case string:
			if s != "MAX" {
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return nil, softwareRAIDError("logical disk %d: size_gb must be a positive number of GiB or \"MAX\", not %q", i, s)
				}
				ld.sizeGiB = n
			}
		case float64:
			if s <= 0 || s != float64(int(s)) {
				return nil, softwareRAIDError("logical disk %d: size_gb must be a positive number of GiB or \"MAX\", not %v", i, s)
			}
			ld.sizeGiB = int(s)
		default:
			return nil, softwareRAIDError("logical disk %d: size_gb must be a positive number of GiB or \"MAX\", not %v", i, m["size_gb"])
		}
		if v, ok := m["volume_name"]; ok && v != nil {
			ld.volumeName, ld.hasVolumeName = fmt.Sprint(v), true
		}
		if v, ok := m["is_root_volume"].(bool); ok {
			ld.isRoot = &v
		}
		if v, ok := m["physical_disks"]; ok && v != nil {
			ld.hasPhysical = true
			list, _ := v.([]any)
			for _, p := range list {
				h, _ := p.(map[string]any)
				ld.physical = append(ld.physical, h) // nil entries are caught by validation
			}
			if list == nil {
				ld.physical = nil
			}
		}
		out = append(out, ld)
	}
	return out, nil
}

// SkipVolumeNames are the volume_name entries of
// properties.skip_block_devices: RAID volumes to keep.
func SkipVolumeNames(node map[string]any) map[string]bool {
	props, _ := node["properties"].(map[string]any)
	list, _ := props["skip_block_devices"].([]any)
	out := map[string]bool{}
	for _, s := range list {
		if m, ok := s.(map[string]any); ok {
			if v, ok := m["volume_name"]; ok {
				out[fmt.Sprint(v)] = true
			}
		}
	}
	return out
}

// supportedRAIDLevels are what goipa builds. IPA also accepts 1+0, 5 and
// 6 for the second volume; goipa refuses them with IPA's wording.
var supportedRAIDLevels = map[string]bool{"0": true, "1": true}

// Validate is IPA's validate_configuration, with goipa's
// levels: every problem is listed in one SoftwareRAIDError before any
// disk is touched. disks is how many candidate disks there are.
func Validate(cfg map[string]any, node map[string]any, disks int) ([]logicalDisk, error) {
	lds, err := parseRAIDConfig(cfg)
	if err != nil {
		return nil, err
	}
	var errs []string
	if len(lds) != 1 && len(lds) != 2 {
		errs = append(errs, "Software RAID configuration requires one or two logical disks")
	}
	skip := SkipVolumeNames(node)
	names := map[string]bool{}
	root := false
	for _, ld := range lds {
		if ld.controller != "software" {
			errs = append(errs, "Software RAID configuration requires all logical disks to have 'controller'='software'")
		}
		if !ld.hasVolumeName {
			if len(skip) > 0 {
				errs = append(errs, "All logical disks are required to have a volume name specified as a volume name is mentioned in the property skip block devices.")
			}
		} else if names[ld.volumeName] {
			errs = append(errs, fmt.Sprintf("Duplicate software RAID device name %s detected", ld.volumeName))
		} else {
			names[ld.volumeName] = true
		}
		if ld.isRoot != nil && *ld.isRoot {
			if root {
				errs = append(errs, "Software RAID configuration allows only one logical disk to be marked as is_root_volume")
			}
			root = true
		}
		if ld.hasPhysical {
			bad := len(ld.physical) < 2
			for _, p := range ld.physical {
				if p == nil {
					bad = true
				}
			}
			if bad {
				errs = append(errs, "The physical_disks parameter for software RAID must be a list with at least 2 items, each specifying a disk in the device hints format")
			}
		}
		if !supportedRAIDLevels[ld.level] {
			errs = append(errs, fmt.Sprintf("Software RAID configuration does not support RAID level %s", ld.level))
		}
		if !ld.hasPhysical && disks < 2 {
			errs = append(errs, fmt.Sprintf("Software RAID configuration is not possible for RAID level %s with only %d block devices found.", ld.level, disks))
		}
	}
	if len(lds) > 0 && lds[0].level != "1" {
		errs = append(errs, "Software RAID Configuration requires RAID-1 for the first logical disk")
	}
	if len(lds) == 2 && lds[0].sizeGiB == 0 && lds[1].sizeGiB == 0 {
		errs = append(errs, "Software RAID can have only one RAID device with size 'MAX'")
	}
	if len(errs) > 0 {
		uuid, _ := node["uuid"].(string)
		return nil, softwareRAIDError("Could not validate Software RAID config for %s: %s", uuid, strings.Join(errs, "; "))
	}
	return lds, nil
}

// holders picks each logical disk's holder disks as IPA's
// get_block_devices_for_raid does: per physical_disks entry the first
// matching disk not already taken by this volume, else every disk. It
// returns all holders in first-use order.
func holders(disks []inventory.Disk, lds []logicalDisk) ([]string, error) {
	var all []string
	seen := map[string]bool{}
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = d.Name
	}
	for i := range lds {
		var matching []string
		if lds[i].hasPhysical {
			for _, hint := range lds[i].physical {
				var candidates []string
				for _, d := range disks {
					ok, err := inventory.Matches(d, hint)
					if err != nil {
						return nil, softwareRAIDError("physical disk hints %v: %v", hint, err)
					}
					if ok {
						candidates = append(candidates, d.Name)
					}
				}
				if len(candidates) == 0 {
					return nil, softwareRAIDError("No candidates for physical disk %s from the list %s", jsonText(hint), strings.Join(names, ", "))
				}
				picked := ""
				for _, c := range candidates {
					if !contains(matching, c) {
						picked = c
						break
					}
				}
				if picked == "" {
					return nil, softwareRAIDError("No candidates left for physical disk %s from the list %s after picking %s for previous volumes",
						jsonText(hint), strings.Join(candidates, ", "), strings.Join(matching, ", "))
				}
				matching = append(matching, picked)
			}
		} else {
			matching = append(matching, names...)
		}
		if len(matching) < 2 {
			return nil, softwareRAIDError("Software RAID needs at least 2 disks for logical disk %d, found %d", i, len(matching))
		}
		lds[i].holders = matching
		for _, m := range matching {
			if !seen[m] {
				seen[m] = true
				all = append(all, m)
			}
		}
	}
	return all, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// HasSoftwareRAID reports whether a config asks for software RAID at
// all; IPA's create_configuration does nothing (returns {}) otherwise.
func HasSoftwareRAID(cfg map[string]any) bool {
	raw, _ := cfg["logical_disks"].([]any)
	for _, r := range raw {
		if m, ok := r.(map[string]any); ok && m["controller"] == "software" {
			return true
		}
	}
	return false
}

// jsonText renders a physical_disks hint as IPA's messages quote it.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
