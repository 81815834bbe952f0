// Package rescue is what a tenant gets on a rescued node: SHA-crypt
// password hashes as Ironic sends them (finalize_rescue's rescue_password,
// "$5$" or "$6$"), and an SSH server that lets the `rescue` user in with
// that password and gives it the ramdisk's shell, with or without a PTY.
//
// IPA's ramdisks create a Unix account from the hash and rely on the
// distribution's sshd and getty; goipa's ramdisk has neither, so the hash
// is checked here (Drepper's "Unix crypt using SHA-256 and SHA-512",
// as glibc and libxcrypt implement it) and the console login lives with
// PID 1 in initramfs/boot.
package rescue
