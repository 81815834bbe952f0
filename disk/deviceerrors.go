package disk

import (
	"sort"
	"strings"
)

// DeviceErrors are the failures of an operation run on several devices
// at once, by device.
type DeviceErrors map[string]error

// Error lists every device's failure, sorted by device, so the message
// Ironic shows the operator is stable.
func (e DeviceErrors) Error() string {
	parts := make([]string, 0, len(e))
	for dev, err := range e {
		parts = append(parts, dev+": "+err.Error())
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
