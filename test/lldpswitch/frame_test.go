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
