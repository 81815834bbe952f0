// Package firmware updates device firmware in band, through the
// kernel's vendor-neutral interfaces: the NVMe Firmware Image Download
// and Firmware Commit admin commands (over the NVMe admin passthrough
// ioctl that package disk owns) and devlink's flash update for NICs
// (over generic netlink).
//
// An update is planned whole before anything reaches a device: every
// target is resolved, every controller's support checked, and every
// image downloaded and verified against its checksum first. A wrong
// checksum, an unknown target or a controller without firmware download
// is a clear error and nothing is sent.
package firmware
