// Package netcfg configures the ramdisk's network with netlink: links,
// DHCP, static addresses, VLANs and LLDP. It also answers the questions the
// agent asks of a network that is already up, such as which local address
// reaches Ironic.
package netcfg
