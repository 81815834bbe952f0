package realironic

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/inventory"
	"github.com/goipa/goipa/netcfg"
	"github.com/goipa/goipa/test/lldpswitch"
)

// lldpPorts are two switch ports as the agent hears them.
var lldpPorts = []struct {
	iface string
	port  lldpswitch.Port
}{
	{"eth0", lldpswitch.Port{ChassisMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xa0, 0x00, 0x00}, SystemName: "tor-a.rack3.example",
		PortID: "Ethernet1/7", PortDescription: "rack3 host7", VLAN: 101, VLANName: "provisioning"}},
	{"eth1", lldpswitch.Port{ChassisMAC: net.HardwareAddr{0x02, 0x00, 0x5e, 0xb0, 0x00, 0x00}, SystemName: "tor-b", PortID: "swp7", VLAN: 4094}},
}

// lldpInventory is the interfaces part of goipa's inventory for
// lldpPorts, as JSON: the TLVs go through goipa's own reader (netcfg) and
// inventory types, as the agent sends them.
func lldpInventory(t *testing.T) ([]byte, map[string][]netcfg.TLV) {
	t.Helper()
	var ifaces []inventory.Interface
	heard := map[string][]netcfg.TLV{}
	for i, p := range lldpPorts {
		pdu, err := p.port.PDU()
		if err != nil {
			t.Fatal(err)
		}
		tlvs, err := netcfg.ParseLLDP(pdu)
		if err != nil {
			t.Fatal(err)
		}
		heard[p.iface] = tlvs
		iface := inventory.Interface{Name: p.iface, MACAddress: fmt.Sprintf("52:54:00:00:00:%02x", i), HasCarrier: true, LLDP: []inventory.LLDPTLV{}}
		for _, tlv := range tlvs {
			iface.LLDP = append(iface.LLDP, inventory.LLDPTLV{Type: tlv.Type, Value: tlv.Value})
		}
		ifaces = append(ifaces, iface)
	}
	// A NIC that heard nothing: the hook must get a list it can loop over.
	ifaces = append(ifaces, inventory.Interface{Name: "eth2", MACAddress: "52:54:00:00:00:09", LLDP: []inventory.LLDPTLV{}})
	b, err := json.Marshal(map[string]any{"interfaces": ifaces})
	if err != nil {
		t.Fatal(err)
	}
	return b, heard
}

// TestLLDPInventoryShapeIsWhatParseLLDPReads checks goipa's `lldp` per
// interface against what Ironic master's built-in inspection hook
// parse-lldp (ironic/drivers/modules/inspector/hooks/parse_lldp.py) and
// the inspector's lldp_basic read: the hook takes `interface['lldp']`
// (when plugin_data has no lldp_raw for it), loops `for tlv_type,
// tlv_value in tlvs`, looks tlv_type up in an int-keyed parser map and
// formats it with %d, decodes tlv_value with binascii.a2b_hex (which only
// a TypeError escapes quietly: an odd-length or non-hex string raises
// binascii.Error and fails the whole hook) and refuses values over 511
// bytes.
func TestLLDPInventoryShapeIsWhatParseLLDPReads(t *testing.T) {
	b, heard := lldpInventory(t)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var inv struct {
		Interfaces []map[string]any `json:"interfaces"`
	}
	if err := dec.Decode(&inv); err != nil {
		t.Fatal(err)
	}
	for _, iface := range inv.Interfaces {
		name := fmt.Sprint(iface["name"])
		tlvs, ok := iface["lldp"].([]any)
		if !ok {
			t.Errorf("%s: lldp is %T (%v), want a list the hook can loop over", name, iface["lldp"], iface["lldp"])
			continue
		}
		if len(tlvs) != len(heard[name]) {
			t.Errorf("%s: %d TLVs in the inventory, %d heard", name, len(tlvs), len(heard[name]))
			continue
		}
		for i, raw := range tlvs {
			pair, ok := raw.([]any)
			if !ok || len(pair) != 2 {
				t.Errorf("%s TLV %d: %v is not a [type, value] pair", name, i, raw)
				continue
			}
			num, ok := pair[0].(json.Number)
			typ, err := num.Int64()
			if !ok || err != nil || strings.ContainsAny(num.String(), ".eE") || typ < 0 || typ > 127 {
				t.Errorf("%s TLV %d: type %v (%T) is not a JSON integer 0-127", name, i, pair[0], pair[0])
			}
			val, ok := pair[1].(string)
			if !ok {
				t.Errorf("%s TLV %d: value %v (%T) is not a string", name, i, pair[1], pair[1])
				continue
			}
			if len(val)%2 != 0 || strings.Trim(val, "0123456789abcdefABCDEF") != "" {
				t.Errorf("%s TLV %d: value %q is not even-length hex (a2b_hex would raise binascii.Error)", name, i, val)
				continue
			}
			got, _ := hex.DecodeString(val)
			if want := heard[name][i]; int(typ) != want.Type || !bytes.Equal(got, want.Value) {
				t.Errorf("%s TLV %d: [%d, %x], heard [%d, %x]", name, i, typ, got, want.Type, want.Value)
			}
			if len(got) > 511 {
				t.Errorf("%s TLV %d: %d bytes, the parser refuses more than 511", name, i, len(got))
			}
		}
	}
}

// parseWithInspectorParser runs Debian's ironic-inspector
// LLDPBasicMgmtParser (the parser Ironic master's parse-lldp hook took
// over unchanged but for a length check and a decode-error guard) on the
// inventory's `lldp` of every interface, as the hook's loop does, and
// returns its name/value pairs per interface. It runs under Debian's
// interpreter, where the ironic-inspector package put its modules.
const parseWithInspectorParser = `
import binascii, json, sys
from ironic_inspector.common import lldp_parsers
out = {}
for iface in json.load(sys.stdin)["interfaces"]:
    parser = lldp_parsers.LLDPBasicMgmtParser(None)
    for tlv_type, tlv_value in iface.get("lldp"):
        parser.parse_tlv(tlv_type, bytearray(binascii.a2b_hex(tlv_value)))
    out[iface["name"]] = parser.nv_dict
json.dump(out, sys.stdout, default=str)
`

// TestLLDPInventoryParsedByTheRealParser feeds goipa's inventory to the
// real LLDP parser: each interface's switch name, port, chassis and VLANs
// come out under the names Ironic stores in plugin_data['parsed_lldp']
// (and the inspector in lldp_processed).
func TestLLDPInventoryParsedByTheRealParser(t *testing.T) {
	testenv.NeedCommands(t, "/usr/bin/python3", "ironic-inspector")
	b, _ := lldpInventory(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", parseWithInspectorParser)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the inspector's LLDP parser: %v\n%s", err, stderr.String())
	}
	var parsed map[string]map[string]any
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, p := range lldpPorts {
		nv := parsed[p.iface]
		want := map[string]string{
			"switch_chassis_id":            p.port.ChassisMAC.String(),
			"switch_port_id":               p.port.PortID,
			"switch_system_name":           p.port.SystemName,
			"switch_port_untagged_vlan_id": fmt.Sprint(p.port.VLAN),
		}
		if p.port.PortDescription != "" {
			want["switch_port_description"] = p.port.PortDescription
		}
		for k, v := range want {
			if got := fmt.Sprint(nv[k]); got != v {
				t.Errorf("%s: %s = %s, want %s (all: %v)", p.iface, k, got, v, nv)
			}
		}
		if p.port.VLANName != "" {
			if got, want := fmt.Sprint(nv["switch_port_vlans"]), fmt.Sprintf("[map[id:%d name:%s]]", p.port.VLAN, p.port.VLANName); got != want {
				t.Errorf("%s: switch_port_vlans = %s, want %s", p.iface, got, want)
			}
		}
	}
	if nv := parsed["eth2"]; len(nv) != 0 {
		t.Errorf("a NIC that heard nothing parsed to %v", nv)
	}
}
