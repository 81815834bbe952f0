package raid

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/goipa/goipa/inventory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEraseTargets(t *testing.T) {
	str := func(s string) *string { return &s }
	disks := []inventory.Disk{
		{Name: "/dev/sda", Serial: str("A1"), Size: 1 << 30},
		{Name: "/dev/sdb", Serial: str("B2"), Size: 2 << 30},
		{Name: "/dev/sdc", ReadOnly: true},
		{Name: "/dev/md0"},
		{Name: "/dev/md1"},
	}
	member := func(d string) bool { return d == "/dev/sdb" }
	volume := func(d string) string {
		return map[string]string{"/dev/md0": "root", "/dev/md1": "data"}[d]
	}
	names := func(ds []inventory.Disk) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	skip := func(entries ...any) map[string]any {
		return map[string]any{"properties": map[string]any{"skip_block_devices": entries}}
	}
	for _, tc := range []struct {
		name    string
		node    map[string]any
		want    []string
		wantErr bool
	}{
		{name: "no skip list: members and read-only devices skipped", node: map[string]any{}, want: []string{"/dev/sda", "/dev/md0", "/dev/md1"}},
		{name: "a volume kept by name", node: skip(map[string]any{"volume_name": "data"}), want: []string{"/dev/sda", "/dev/md0"}},
		{name: "a disk kept by serial", node: skip(map[string]any{"serial": "A1"}), want: []string{"/dev/md0", "/dev/md1"}},
		{name: "a disk kept by name", node: skip(map[string]any{"name": "/dev/md0"}), want: []string{"/dev/sda", "/dev/md1"}},
		{name: "entries that are no objects are ignored", node: skip("sda", 3.0), want: []string{"/dev/sda", "/dev/md0", "/dev/md1"}},
		{name: "a bad hint", node: skip(map[string]any{"size": "huge"}), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := eraseTargets(disks, tc.node, member, volume, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tc.wantErr {
				var se *SkipListError
				require.True(t, errors.As(err, &se), "%v", err)
				assert.Contains(t, err.Error(), "skip_block_devices: ")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, names(got))
		})
	}
}
