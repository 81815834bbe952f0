// Package boot does the duties of PID 1 in goipa's ramdisk: the kernel
// file systems, the console, and (with the initramfs issue) kernel module
// coldplug. The agent binary imports it; the build code in package
// initramfs never goes into the ramdisk.
package boot
