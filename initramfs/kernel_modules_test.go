package initramfs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Every driver set must read Ironic's virtual media and build what
// network_data.json asks for; QEMU's sets may leave out USB (Debian's
// cloud kernel has none) but need QEMU's IDE CD drive.
func TestModuleSetsReadVirtualMedia(t *testing.T) {
	usb := map[string]bool{"usb_storage": true, "uas": true, "xhci_pci": true, "ehci_pci": true}
	for name, set := range map[string][]string{"ServerModules": ServerModules, "ARM64ServerModules": ARM64ServerModules, "VirtioModules": VirtioModules} {
		have := map[string]bool{}
		for _, m := range set {
			have[m] = true
		}
		for _, m := range VMediaModules {
			if name == "VirtioModules" && usb[m] {
				continue
			}
			assert.True(t, have[m], "%s lacks %s", name, m)
		}
	}
	assert.Contains(t, VirtioModules, "ata_piix")
}

// Every driver set carries what init loads by name for multipath maps.
func TestModuleSetsAssembleMultipath(t *testing.T) {
	for name, set := range map[string][]string{"ServerModules": ServerModules, "ARM64ServerModules": ARM64ServerModules, "VirtioModules": VirtioModules} {
		for _, m := range MultipathModules {
			assert.Contains(t, set, m, "%s lacks %s", name, m)
		}
	}
}
