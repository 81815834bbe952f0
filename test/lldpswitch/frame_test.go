package lldpswitch

import (
	"bytes"
	"encoding/binary"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/goipa/goipa/netcfg"
)

var chassis = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}

func TestPDUReadsBackThroughNetcfg(t *testing.T) {
	tests := []struct {
		name  string
		port  Port
		want  netcfg.Neighbour
		types []int
	}{
		{
			name:  "all TLVs",
			port:  Port{ChassisMAC: chassis, PortID: "Ethernet1/7", PortDescription: "rack 3 host 7", SystemName: "tor-a.example", VLAN: 101, VLANName: "provisioning"},
			want:  netcfg.Neighbour{ChassisID: "02:00:5e:10:00:01", PortID: "Ethernet1/7", SystemName: "tor-a.example", VLANs: []int{101}},
			types: []int{1, 2, 3, 4, 5, 127, 127},
		},
		{
			name:  "mandatory TLVs only",
			port:  Port{ChassisMAC: chassis, PortID: "swp1"},
			want:  netcfg.Neighbour{ChassisID: "02:00:5e:10:00:01", PortID: "swp1"},
			types: []int{1, 2, 3},
		},
		{
			name:  "port VLAN without a name",
			port:  Port{ChassisMAC: chassis, PortID: "swp2", SystemName: "leaf", VLAN: 4094},
			want:  netcfg.Neighbour{ChassisID: "02:00:5e:10:00:01", PortID: "swp2", SystemName: "leaf", VLANs: []int{4094}},
			types: []int{1, 2, 3, 5, 127},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pdu, err := tc.port.PDU()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(pdu, []byte{0, 0}) {
				t.Errorf("the PDU does not end with the End TLV: % x", pdu)
			}
			tlvs, err := netcfg.ParseLLDP(pdu)
			if err != nil {
				t.Fatal(err)
			}
			var types []int
			for _, tlv := range tlvs {
				types = append(types, tlv.Type)
			}
			if !reflect.DeepEqual(types, tc.types) {
				t.Errorf("TLV types %v, want %v", types, tc.types)
			}
			if got := netcfg.Summarize(tlvs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("neighbour %+v, want %+v", got, tc.want)
			}
			if ttl := binary.BigEndian.Uint16(tlvs[2].Value); ttl != 120 {
				t.Errorf("TTL %d, want the default 120", ttl)
			}
		})
	}
}

func TestPDURefusesWhatNoSwitchSends(t *testing.T) {
	tests := []struct {
		name string
		port Port
		want string
	}{
		{"no chassis", Port{PortID: "x"}, "chassis MAC"},
		{"no port", Port{ChassisMAC: chassis}, "port ID"},
		{"VLAN too big", Port{ChassisMAC: chassis, PortID: "x", VLAN: 4095}, "VLAN 4095"},
		{"VLAN name too long", Port{ChassisMAC: chassis, PortID: "x", VLAN: 5, VLANName: strings.Repeat("v", 33)}, "longer than 32"},
		{"name too long", Port{ChassisMAC: chassis, PortID: "x", SystemName: strings.Repeat("s", 512)}, "at most 511"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.port.PDU()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestFrameHeader(t *testing.T) {
	src := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x07}
	f, err := Port{ChassisMAC: chassis, PortID: "swp7"}.Frame(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f[:6], Multicast) || !bytes.Equal(f[6:12], src) || binary.BigEndian.Uint16(f[12:14]) != EtherType {
		t.Errorf("frame header % x, want dst %s src %s type 88cc", f[:14], Multicast, src)
	}
	if _, err := (Port{ChassisMAC: chassis, PortID: "x"}).Frame(nil); err == nil {
		t.Error("a frame without a source address was built")
	}
}

// FuzzPortPDU: whatever a test asks a port to advertise, the PDU is
// refused or reads back through the agent's parser with the same chassis,
// port, name and VLAN, ending with the End TLV.
func FuzzPortPDU(f *testing.F) {
	f.Add([]byte(chassis), "Ethernet1/7", "rack3", "tor-a", 101, "provisioning", uint16(120))
	f.Add([]byte{1, 2, 3}, "", "", "", 0, "", uint16(0))
	f.Add([]byte(chassis), "swp1", "", strings.Repeat("n", 511), 4094, strings.Repeat("v", 32), uint16(65535))
	f.Fuzz(func(t *testing.T, mac []byte, portID, desc, name string, vlan int, vlanName string, ttl uint16) {
		p := Port{ChassisMAC: mac, PortID: portID, PortDescription: desc, SystemName: name, VLAN: vlan, VLANName: vlanName, TTL: ttl}
		pdu, err := p.PDU()
		if err != nil {
			return
		}
		tlvs, err := netcfg.ParseLLDP(pdu)
		if err != nil {
			t.Fatalf("the PDU of %+v does not parse: %v", p, err)
		}
		if len(pdu) < 2 || !bytes.Equal(pdu[len(pdu)-2:], []byte{0, 0}) {
			t.Fatalf("no End TLV: % x", pdu)
		}
		if len(tlvs) < 3 || tlvs[0].Type != tlvChassisID || tlvs[1].Type != tlvPortID || tlvs[2].Type != tlvTTL {
			t.Fatalf("chassis, port and TTL must lead: %v", tlvs)
		}
		if !bytes.Equal(tlvs[0].Value[1:], mac) || string(tlvs[1].Value[1:]) != portID {
			t.Fatalf("chassis/port read back as % x / %q", tlvs[0].Value, tlvs[1].Value)
		}
		var gotName, gotVLANName string
		var gotVLAN int
		for _, tlv := range tlvs {
			switch {
			case tlv.Type == tlvSystemName:
				gotName = string(tlv.Value)
			case tlv.Type == tlvOrgSpecific && len(tlv.Value) == 6 && tlv.Value[3] == dot1PortVLANID:
				gotVLAN = int(binary.BigEndian.Uint16(tlv.Value[4:]))
			case tlv.Type == tlvOrgSpecific && len(tlv.Value) >= 7 && tlv.Value[3] == dot1VLANName:
				if int(tlv.Value[6]) != len(tlv.Value)-7 {
					t.Fatalf("VLAN name length byte %d, %d bytes follow", tlv.Value[6], len(tlv.Value)-7)
				}
				gotVLANName = string(tlv.Value[7:])
			}
		}
		if vlan == 0 {
			vlanName = "" // no VLAN, no VLAN name
		}
		if gotName != name || gotVLAN != vlan || gotVLANName != vlanName {
			t.Fatalf("name %q VLAN %d read back as %q %d", name, vlan, gotName, gotVLAN)
		}
	})
}
