package lldpswitch

import (
	"encoding/binary"
	"fmt"
	"net"
)

// EtherType is LLDP's ethertype.
const EtherType = 0x88cc

// Multicast is the nearest-bridge group address switches send LLDP to.
var Multicast = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

// TLV types and 802.1 subtypes used here (IEEE 802.1AB-2016 8.4,
// 802.1Q-2014 annex D).
const (
	tlvEnd         = 0
	tlvChassisID   = 1
	tlvPortID      = 2
	tlvTTL         = 3
	tlvPortDesc    = 4
	tlvSystemName  = 5
	tlvOrgSpecific = 127

	chassisSubtypeMAC  = 4
	portSubtypeIfName  = 5
	dot1PortVLANID     = 1
	dot1VLANName       = 3
	maxTLVValueLen     = 511
	maxVLANNameLen     = 32 // 802.1Q annex D.2.3
	defaultTTL         = 120
	ethernetHeaderSize = 14
)

// dot1 starts an IEEE 802.1 organizationally specific TLV's value.
func dot1(subtype byte) []byte { return []byte{0x00, 0x80, 0xc2, subtype} }

// Port is what one switch port advertises.
type Port struct {
	ChassisMAC      net.HardwareAddr // chassis ID, MAC address subtype
	PortID          string           // port ID, interface name subtype ("Ethernet1/7")
	PortDescription string           // omitted when empty
	SystemName      string           // the switch's name
	VLAN            int              // 802.1 port VLAN ID (PVID); omitted when 0
	VLANName        string           // 802.1 VLAN name TLV for VLAN; omitted when empty
	TTL             uint16           // seconds; 120 when 0
}

// PDU is the LLDPDU: the frame's payload after the ethertype.
func (p Port) PDU() ([]byte, error) {
	if len(p.ChassisMAC) != 6 {
		return nil, fmt.Errorf("lldpswitch: chassis MAC %q is not 6 bytes", p.ChassisMAC)
	}
	if p.PortID == "" {
		return nil, fmt.Errorf("lldpswitch: a port needs a port ID")
	}
	if p.VLAN < 0 || p.VLAN > 4094 {
		return nil, fmt.Errorf("lldpswitch: VLAN %d out of range", p.VLAN)
	}
	if len(p.VLANName) > maxVLANNameLen {
		return nil, fmt.Errorf("lldpswitch: VLAN name %q is longer than %d bytes", p.VLANName, maxVLANNameLen)
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	var b []byte
	var err error
	add := func(typ int, value []byte) {
		if err != nil {
			return
		}
		if len(value) > maxTLVValueLen {
			err = fmt.Errorf("lldpswitch: TLV %d value is %d bytes, at most %d fit", typ, len(value), maxTLVValueLen)
			return
		}
		b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(value)))
		b = append(b, value...)
	}
	add(tlvChassisID, append([]byte{chassisSubtypeMAC}, p.ChassisMAC...))
	add(tlvPortID, append([]byte{portSubtypeIfName}, p.PortID...))
	add(tlvTTL, binary.BigEndian.AppendUint16(nil, ttl))
	if p.PortDescription != "" {
		add(tlvPortDesc, []byte(p.PortDescription))
	}
	if p.SystemName != "" {
		add(tlvSystemName, []byte(p.SystemName))
	}
	if p.VLAN != 0 {
		add(tlvOrgSpecific, binary.BigEndian.AppendUint16(dot1(dot1PortVLANID), uint16(p.VLAN)))
		if p.VLANName != "" {
			v := binary.BigEndian.AppendUint16(dot1(dot1VLANName), uint16(p.VLAN))
			v = append(v, byte(len(p.VLANName)))
			add(tlvOrgSpecific, append(v, p.VLANName...))
		}
	}
	add(tlvEnd, nil)
	return b, err
}

// Frame is the Ethernet frame from src to the LLDP multicast address.
func (p Port) Frame(src net.HardwareAddr) ([]byte, error) {
	if len(src) != 6 {
		return nil, fmt.Errorf("lldpswitch: source MAC %q is not 6 bytes", src)
	}
	pdu, err := p.PDU()
	if err != nil {
		return nil, err
	}
	f := make([]byte, 0, ethernetHeaderSize+len(pdu))
	f = append(f, Multicast...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, EtherType)
	return append(f, pdu...), nil
}
