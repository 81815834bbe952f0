// Package lldpswitch plays a switch's part on a test link: it builds the
// LLDP frames a switch port advertises (chassis ID, port ID, TTL, port
// description, system name and the IEEE 802.1 port VLAN ID and VLAN name
// TLVs, IEEE 802.1AB and 802.1Q annex D) and sends them from the host side
// of a link (a tap or veth inside a test's network namespace) every few
// seconds, as a switch does, so that an agent in a VM hears its neighbour.
// It can also capture the LLDP frames that cross a link, so a test can
// show the frames were on the wire.
//
// It is test infrastructure: the agent's own LLDP reader is netcfg's.
package lldpswitch
