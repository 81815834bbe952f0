package disk

import (
	"errors"
	"testing"
)

func TestDeviceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		errs DeviceErrors
		want string
	}{
		{"none", DeviceErrors{}, ""},
		{"one", DeviceErrors{"/dev/sda": errors.New("busy")}, "/dev/sda: busy"},
		{"sorted by device", DeviceErrors{"/dev/sdb": errors.New("b"), "/dev/loop3": errors.New("c"), "/dev/sda": errors.New("a")}, "/dev/loop3: c; /dev/sda: a; /dev/sdb: b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.errs.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}
