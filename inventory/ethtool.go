package inventory

import (
	"path"
	"regexp"
	"strconv"
)

// netFeature is one offload feature as ETHTOOL_GFEATURES reports it.
type netFeature struct {
	Name                                string
	Available, Requested, Active, Fixed bool
}

// legacyFeatureGroups are ethtool's legacy flags: `ethtool -k` prints
// the kernel features matching each pattern under the flag's long name
// first, then every other feature by itself.
var legacyFeatureGroups = []struct{ long, pattern string }{
	{"rx-checksumming", "rx-checksum"},
	{"tx-checksumming", "tx-checksum-*"},
	{"scatter-gather", "tx-scatter-gather*"},
	{"tcp-segmentation-offload", "tx-tcp*-segmentation"},
	{"udp-fragmentation-offload", "tx-udp-fragmentation"},
	{"generic-segmentation-offload", "tx-generic-segmentation"},
	{"generic-receive-offload", "rx-gro"},
	{"large-receive-offload", "rx-lro"},
	{"rx-vlan-offload", "rx-vlan-hw-parse"},
	{"tx-vlan-offload", "tx-vlan-hw-insert"},
	{"ntuple-filters", "rx-ntuple-filter"},
	{"receive-hashing", "rx-hashing"},
}

// featureState words a feature as ethtool does: on/off, then [fixed]
// when it cannot change, or what was requested when that differs.
func featureState(f netFeature) string {
	s := "off"
	if f.Active {
		s = "on"
	}
	switch {
	case !f.Available || f.Fixed:
		s += " [fixed]"
	case f.Requested != f.Active:
		if f.Requested {
			s += " [requested on]"
		} else {
			s += " [requested off]"
		}
	}
	return s
}

// featureFacts turns the features into the (key, value) pairs the
// hardware package's parse_ethtool makes of `ethtool -k`: a legacy group
// with several members becomes "group" and "group/member" keys, a group
// of one is keyed by the group's name, the rest by their own.
func featureFacts(feats []netFeature) [][2]string {
	var out [][2]string
	used := make([]bool, len(feats))
	for _, g := range legacyFeatureGroups {
		var members []int
		for i, f := range feats {
			if used[i] || f.Name == "" {
				continue
			}
			if ok, _ := path.Match(g.pattern, f.Name); ok {
				members = append(members, i)
			}
		}
		if len(members) == 0 {
			continue
		}
		for _, i := range members {
			used[i] = true
		}
		if len(members) == 1 {
			out = append(out, [2]string{g.long, featureState(feats[members[0]])})
			continue
		}
		on, fixed := false, true
		for _, i := range members {
			on = on || feats[i].Active
			fixed = fixed && (!feats[i].Available || feats[i].Fixed)
		}
		state := "off"
		if on {
			state = "on"
		}
		if fixed {
			state += " [fixed]"
		}
		out = append(out, [2]string{g.long, state})
		for _, i := range members {
			out = append(out, [2]string{g.long + "/" + feats[i].Name, featureState(feats[i])})
		}
	}
	for i, f := range feats {
		if !used[i] && f.Name != "" {
			out = append(out, [2]string{f.Name, featureState(f)})
		}
	}
	return out
}

// linkModeSpeed reads the speed (Mb/s) out of a link mode's name.
var linkModeSpeed = regexp.MustCompile(`^(\d+)base`)

// linkModeNames are the kernel's ethtool link mode bits (uapi
// ethtool.h, enum ethtool_link_mode_bit_indices) that name a speed; the
// others (ports, pause, FEC) are left empty.
var linkModeNames = []string{
	0: "10baseT_Half", 1: "10baseT_Full", 2: "100baseT_Half", 3: "100baseT_Full",
	4: "1000baseT_Half", 5: "1000baseT_Full", 12: "10000baseT_Full", 15: "2500baseX_Full",
	17: "1000baseKX_Full", 18: "10000baseKX4_Full", 19: "10000baseKR_Full", 20: "10000baseR_FEC",
	21: "20000baseMLD2_Full", 22: "20000baseKR2_Full", 23: "40000baseKR4_Full", 24: "40000baseCR4_Full",
	25: "40000baseSR4_Full", 26: "40000baseLR4_Full", 27: "56000baseKR4_Full", 28: "56000baseCR4_Full",
	29: "56000baseSR4_Full", 30: "56000baseLR4_Full", 31: "25000baseCR_Full", 32: "25000baseKR_Full",
	33: "25000baseSR_Full", 34: "50000baseCR2_Full", 35: "50000baseKR2_Full", 36: "100000baseKR4_Full",
	37: "100000baseSR4_Full", 38: "100000baseCR4_Full", 39: "100000baseLR4_ER4_Full", 40: "50000baseSR2_Full",
	41: "1000baseX_Full", 42: "10000baseCR_Full", 43: "10000baseSR_Full", 44: "10000baseLR_Full",
	45: "10000baseLRM_Full", 46: "10000baseER_Full", 47: "2500baseT_Full", 48: "5000baseT_Full",
	52: "50000baseKR_Full", 53: "50000baseSR_Full", 54: "50000baseCR_Full", 55: "50000baseLR_ER_FR_Full",
	56: "50000baseDR_Full", 57: "100000baseKR2_Full", 58: "100000baseSR2_Full", 59: "100000baseCR2_Full",
	60: "100000baseLR2_ER2_FR2_Full", 61: "100000baseDR2_Full", 62: "200000baseKR4_Full", 63: "200000baseSR4_Full",
	64: "200000baseLR4_ER4_FR4_Full", 65: "200000baseDR4_Full", 66: "200000baseCR4_Full", 67: "100baseT1_Full",
	68: "1000baseT1_Full", 69: "400000baseKR8_Full", 70: "400000baseSR8_Full", 71: "400000baseLR8_ER8_FR8_Full",
	72: "400000baseDR8_Full", 73: "400000baseCR8_Full", 75: "100000baseKR_Full", 76: "100000baseSR_Full",
	77: "100000baseLR_ER_FR_Full", 78: "100000baseCR_Full", 79: "100000baseDR_Full", 80: "200000baseKR2_Full",
	81: "200000baseSR2_Full", 82: "200000baseLR2_ER2_FR2_Full", 83: "200000baseDR2_Full", 84: "200000baseCR2_Full",
	85: "400000baseKR4_Full", 86: "400000baseSR4_Full", 87: "400000baseLR4_ER4_FR4_Full", 88: "400000baseDR4_Full",
	89: "400000baseCR4_Full", 90: "100baseFX_Half", 91: "100baseFX_Full", 92: "10baseT1L_Full",
	93: "800000baseCR8_Full", 94: "800000baseKR8_Full", 95: "800000baseDR8_Full", 96: "800000baseDR8_2_Full",
	97: "800000baseSR8_Full", 98: "800000baseVR8_Full", 99: "10baseT1S_Full", 100: "10baseT1S_Half",
	101: "10baseT1S_P2MP_Half", 102: "10baseT1BRR_Full",
}

// maxLinkSpeed is lshw's "capacity": the fastest link mode the NIC
// supports, in Mb/s; 0 when it names none (virtio, most virtual NICs).
func maxLinkSpeed(supported []uint32) int64 {
	var best int64
	for w, word := range supported {
		for b := range 32 {
			if word&(1<<b) == 0 {
				continue
			}
			i := w*32 + b
			if i >= len(linkModeNames) {
				continue
			}
			if m := linkModeSpeed.FindStringSubmatch(linkModeNames[i]); m != nil {
				if v, err := strconv.ParseInt(m[1], 10, 64); err == nil && v > best {
					best = v
				}
			}
		}
	}
	return best
}
