// Package efi manages UEFI boot entries the way efibootmgr does, without
// it: EFI_LOAD_OPTION and device path encoding (UEFI 2.10, sections 3.1.3
// and 10.3), the Boot#### and BootOrder variables in efivarfs, and the
// discovery of boot loaders on an EFI system partition (BOOTX64.CSV hints
// and the usual removable-media paths), so the agent can point a freshly
// deployed disk's firmware at its boot loader.
//
// It is written here rather than imported because no maintained library
// does both halves on goipa's terms: u-root's efivarfs (a dependency
// already) refuses any directory that is not a mounted efivarfs, which
// goipa-efivars and the tests need, and its uefivars/boot only reads
// entries; canonical/go-efilib encodes everything but is LGPLv3 (with a
// static-linking exception) and would still need a variable backend over
// a directory, which is most of vars.go; foxboron/go-uefi exits the
// process (log.Fatal) on device path nodes it does not know, and
// firmware writes many (PXE, MAC, vendor). goipa writes two node types
// and prints the others generically.
package efi
