// Package netcfg configures the ramdisk's network with netlink: links,
// DHCP, static addresses, VLANs and LLDP. It also answers the questions the
// agent asks of a network that is already up, such as which local address
// reaches Ironic, listens for LLDP in the background (WatchLLDP), and
// takes the links down for a lockdown.
package netcfg
