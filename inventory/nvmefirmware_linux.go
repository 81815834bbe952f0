package inventory

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/goipa/goipa/firmware"
)

// addNVMeFirmware reports each NVMe disk's controller firmware slots as
// goipa_firmware (Identify Controller and the Firmware Slot Information
// log, both read-only admin commands). A controller that does not
// answer leaves the key out; the inventory never fails for it.
func addNVMeFirmware(ctx context.Context, o *options, disks []Disk) {
	seen := map[string]*firmware.NVMeInventory{}
	for i := range disks {
		if !strings.HasPrefix(disks[i].Kname, "nvme") {
			continue
		}
		dev, err := filepath.EvalSymlinks(o.path(filepath.Join("sys/block", disks[i].Kname, "device")))
		if err != nil {
			continue
		}
		ctrl := filepath.Base(dev)
		inv, ok := seen[ctrl]
		if !ok {
			if inv, err = firmware.ReadNVMeInventory(ctx, o.sysRoot, ctrl); err != nil {
				o.log.Debug("inventory: NVMe firmware slots", "controller", ctrl, "error", err)
			}
			seen[ctrl] = inv
		}
		disks[i].Firmware = inv
	}
}
