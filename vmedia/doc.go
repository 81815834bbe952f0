// Package vmedia reads what Ironic hands a ramdisk booted from virtual
// media, as ironic-python-agent does at start: the configuration files
// Ironic puts on its boot ISO (etc/ironic-python-agent/ and
// etc/ironic-python-agent.d/, for example the CA of Ironic's API and
// the ironic-tls.conf naming it), network_data.json for a network
// without DHCP, and the parameters.txt of the older virtual floppy.
//
// The device is found as IPA finds it (a filesystem label, then a check
// that rules out partitions and fixed disks, so a deployed instance's own
// config-2 partition is never read). ISO 9660 is read in Go; the FAT
// floppy is mounted read-only. The configuration files are oslo.config
// INI files whose [DEFAULT] options override the kernel command line;
// Overrides translates them into goipa's parameter names.
package vmedia
