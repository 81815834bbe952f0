// Package efi manages UEFI boot entries the way efibootmgr does, without
// it: EFI_LOAD_OPTION and device path encoding (UEFI 2.10, sections 3.1.3
// and 10.3), the Boot#### and BootOrder variables in efivarfs, and the
// discovery of boot loaders on an EFI system partition (BOOTX64.CSV hints
// and the usual removable-media paths), so the agent can point a freshly
// deployed disk's firmware at its boot loader.
package efi
