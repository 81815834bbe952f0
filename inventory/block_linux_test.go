package inventory

import (
	"testing"

	"github.com/goipa/goipa/disk"
)

func TestEraseTarget(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name string
		d    Disk
		want disk.Target
	}{
		{"every field", Disk{Name: "/dev/sda", Serial: s("S1"), Model: s("M"), Size: 512, ReadOnly: true}, disk.Target{Path: "/dev/sda", Serial: "S1", Model: "M", Size: 512, ReadOnly: true}},
		{"no serial or model", Disk{Name: "/dev/loop0", Size: 4096}, disk.Target{Path: "/dev/loop0", Size: 4096}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.EraseTarget(); got != tc.want {
				t.Errorf("EraseTarget() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
