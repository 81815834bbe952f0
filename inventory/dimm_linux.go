package inventory

import (
	"os"

	"github.com/u-root/u-root/pkg/smbios"
)

// dimmBytes sums the SMBIOS memory devices (type 17), as IPA sums lshw's
// memory banks for physical_mb; 0 without SMBIOS tables or devices (some
// arm64 boards have none). The kernel's memory blocks are no substitute
// where the firmware has them: on an arm64 virt machine with 1 GiB they
// add up to 1152 MiB.
func dimmBytes(o *options) int64 {
	entry, err := os.ReadFile(o.path("sys/firmware/dmi/tables/smbios_entry_point"))
	if err != nil {
		return 0
	}
	table, err := os.ReadFile(o.path("sys/firmware/dmi/tables/DMI"))
	if err != nil {
		return 0
	}
	info, err := smbios.ParseInfo(entry, table)
	if err != nil {
		return 0
	}
	devs, err := info.GetMemoryDevices()
	if err != nil {
		return 0
	}
	var total uint64
	for _, d := range devs {
		if d.Size != 0xffff { // unknown size
			total += d.GetSizeBytes()
		}
	}
	return int64(total)
}
