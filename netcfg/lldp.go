package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
)

// TLV is one LLDP TLV as it came off the wire: the agent reports these
// as IPA's [type, "hex"] pairs.
type TLV struct {
	Type  int
	Value []byte
}

// LLDP TLV types this package reads for its own use.
const (
	tlvEnd        = 0
	tlvChassisID  = 1
	tlvPortID     = 2
	tlvSystemName = 5
	tlvOrg        = 127
)

var oui8021 = []byte{0x00, 0x80, 0xc2}

// ParseLLDP splits an LLDPDU (the frame's payload after the ethertype)
// into TLVs, stopping at the End TLV. It is written here rather than
// taken from a library because IPA reports every TLV raw (lldp_raw),
// mandatory ones included, and a frame a switch sends slightly wrong
// must still be reported: mdlayher/lldp refuses a frame whose End TLV
// is not the buffer's last bytes (odd Ethernet padding after it) or
// whose mandatory TLVs are out of order, and gopacket's layers refuse
// one without every mandatory TLV.
func ParseLLDP(pdu []byte) ([]TLV, error) {
	var out []TLV
	for len(pdu) > 0 {
		if len(pdu) < 2 {
			return out, errors.New("lldp: truncated TLV header")
		}
		h := binary.BigEndian.Uint16(pdu)
		typ, n := int(h>>9), int(h&0x1ff)
		if len(pdu) < 2+n {
			return out, fmt.Errorf("lldp: TLV type %d claims %d bytes, %d left", typ, n, len(pdu)-2)
		}
		if typ == tlvEnd {
			return out, nil
		}
		out = append(out, TLV{Type: typ, Value: append([]byte(nil), pdu[2:2+n]...)})
		pdu = pdu[2+n:]
	}
	return out, nil
}

// Neighbour is what the log shows of a switch port.
type Neighbour struct {
	ChassisID, PortID, SystemName string
	VLANs                         []int
}

// Summarize reads the standard TLVs: chassis and port ids, system name,
// and the 802.1 port VLAN and VLAN name TLVs.
func Summarize(tlvs []TLV) Neighbour {
	var n Neighbour
	idText := func(v []byte) string {
		if len(v) < 2 {
			return ""
		}
		switch v[0] {
		case 4: // MAC address subtype (chassis 4, port 3 below)
			if len(v) == 7 {
				return net.HardwareAddr(v[1:]).String()
			}
		}
		return strings.TrimRight(string(v[1:]), "\x00")
	}
	for _, t := range tlvs {
		switch t.Type {
		case tlvChassisID:
			n.ChassisID = idText(t.Value)
		case tlvPortID:
			if len(t.Value) == 7 && t.Value[0] == 3 {
				n.PortID = net.HardwareAddr(t.Value[1:]).String()
			} else {
				n.PortID = idText(t.Value)
			}
		case tlvSystemName:
			n.SystemName = string(t.Value)
		case tlvOrg:
			if len(t.Value) < 4 || string(t.Value[:3]) != string(oui8021) {
				continue
			}
			switch t.Value[3] {
			case 1: // port VLAN id
				if len(t.Value) >= 6 {
					if id := int(binary.BigEndian.Uint16(t.Value[4:6])); id > 0 {
						n.VLANs = appendUnique(n.VLANs, id)
					}
				}
			case 3: // VLAN name: id, name length, name
				if len(t.Value) >= 6 {
					n.VLANs = appendUnique(n.VLANs, int(binary.BigEndian.Uint16(t.Value[4:6])))
				}
			}
		}
	}
	return n
}

func appendUnique(s []int, v int) []int {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// needsLLDP reports whether a VLAN spec asks for advertised VLANs.
func needsLLDP(spec string) bool {
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		if e != "" && !strings.Contains(e, ".") {
			return true
		}
	}
	return false
}

// ExpandVLANs turns ipa-enable-vlan-interfaces into explicit
// "iface.id" entries, as IPA does: "all" means every VLAN every
// interface's switch port advertises, a bare interface name the VLANs
// advertised on it; "iface.id" entries stay as they are.
func ExpandVLANs(spec string, links []string, advertised map[string][]int) string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case strings.Contains(e, "."):
			add(e)
		case e == "all":
			for _, l := range links {
				for _, id := range advertised[l] {
					add(fmt.Sprintf("%s.%d", l, id))
				}
			}
		default:
			for _, id := range advertised[e] {
				add(fmt.Sprintf("%s.%d", e, id))
			}
		}
	}
	return strings.Join(out, ",")
}
