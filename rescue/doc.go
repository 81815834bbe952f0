// Package rescue is the ramdisk's SSH access: SHA-crypt password hashes
// as Ironic sends them (finalize_rescue's rescue_password, "$5$" or
// "$6$") and as operators give `rootpwd=`, public keys as `sshkey=` gives
// them (Metal3's IRONIC_RAMDISK_SSH_KEY), and one SSH server on port 22
// whose accounts (root for the operator's debug login, `rescue` for the
// tenant of a rescued node) get the ramdisk's shell, with or without a
// PTY. LoginHash and StorePassword are finalize_rescue's part: the hash a
// login checks, kept where IPA keeps it.
//
// IPA's ramdisks create Unix accounts and rely on the distribution's
// sshd and getty; goipa's ramdisk has neither, so the hash is checked
// here (Drepper's "Unix crypt using SHA-256 and SHA-512", as glibc and
// libxcrypt implement it) and the console login lives with PID 1 in
// initramfs/boot.
package rescue
