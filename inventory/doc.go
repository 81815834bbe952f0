// Package inventory gathers the hardware inventory in the schema Ironic,
// ironic-inspector and Metal3 read from IPA, lists the block devices goipa
// may touch, and picks the install disk by IPA's root device hints.
//
// It knows nothing of Ironic's protocol; the agent sends what it returns.
// CPU, memory and DMI data come from jaypipes/ghw; disks and NICs are read
// from sysfs and udev's database, which carry what ghw lacks (wwn, hctl,
// by-path, sector sizes, transport). The BMC is asked over IPMI through
// the kernel's /dev/ipmi0 (u-root's pkg/ipmi), and the dmi-decode
// collector reads the SMBIOS tables in sysfs: no ipmitool or dmidecode in
// the ramdisk. Machine is the agent's view of all this under one
// configuration: inventory, MACs, inspection data with its waits (LLDP
// heard, NICs addressed), and the install disk with IPA's wait for it.
//
// The inspection collectors carry IPA's names and shapes; extra-hardware
// reports what the python hardware package's hardware-detect prints
// (lshw, lscpu, ethtool, smartctl and ipmitool's figures, under their key
// names) from sysfs, SMBIOS and ioctls.
package inventory
