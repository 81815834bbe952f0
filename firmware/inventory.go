package firmware

import "context"

// NVMeInventory is what the inventory reports of an NVMe controller's
// firmware (goipa_firmware), so inspection rules can check versions.
type NVMeInventory struct {
	Controller           string            `json:"controller"`
	Running              string            `json:"running"`
	ActiveSlot           int               `json:"active_slot"`
	NextResetSlot        int               `json:"next_reset_slot,omitempty"`
	Slots                map[string]string `json:"slots"`
	SlotCount            int               `json:"slot_count"`
	Slot1ReadOnly        bool              `json:"slot1_read_only"`
	UpdateSupported      bool              `json:"update_supported"`
	ActivateWithoutReset bool              `json:"activate_without_reset"`
}

// NVMeInventoryOf reads Identify Controller data and the Firmware Slot
// Information log into the inventory's shape.
func NVMeInventoryOf(ctrl string, id, slotLog []byte) (NVMeInventory, error) {
	caps, err := ParseNVMeIdentify(id)
	if err != nil {
		return NVMeInventory{}, err
	}
	l, err := ParseNVMeSlotLog(slotLog)
	if err != nil {
		return NVMeInventory{}, err
	}
	running := l.Running()
	if running == "" {
		running = caps.Revision
	}
	return NVMeInventory{Controller: ctrl, Running: running, ActiveSlot: l.Active, NextResetSlot: l.NextReset, Slots: l.Slots(),
		SlotCount: caps.Slots, Slot1ReadOnly: caps.Slot1ReadOnly, UpdateSupported: caps.Supported, ActivateWithoutReset: caps.ActivateWithoutReset}, nil
}

// ReadNVMeInventory asks controller ctrl (nvme0, /dev under root) for
// its firmware slots. It only reads.
func ReadNVMeInventory(ctx context.Context, root, ctrl string) (*NVMeInventory, error) {
	dev, err := openNVMeDevice(root, ctrl)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	id, err := dev.Identify(ctx)
	if err != nil {
		return nil, err
	}
	log, err := dev.SlotLog(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := NVMeInventoryOf(ctrl, id, log)
	if err != nil {
		return nil, err
	}
	return &inv, nil
}
