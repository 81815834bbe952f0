// Package timesync reads the time from an NTP server and steps the system
// clock to it, as IPA does with ipa-ntp-server before it makes its TLS
// certificate and writes timestamps: a ramdisk booted on a machine with
// a wrong RTC would otherwise make certificates not valid yet and logs
// out of order. The protocol (SNTP, with the answer checked: origin
// timestamp, kiss-of-death, unsynchronised or too distant servers) is
// github.com/beevik/ntp's; this package adds bounded retries, a context,
// and the clock step (Sync does both).
package timesync
