package raid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/inventory"
)

func raidConfig(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m))
	return m
}

func TestValidateRAIDConfig(t *testing.T) {
	node := map[string]any{"uuid": "node-1"}
	skipNode := map[string]any{"uuid": "node-1", "properties": map[string]any{"skip_block_devices": []any{map[string]any{"volume_name": "keep"}}}}
	for _, tc := range []struct {
		name  string
		cfg   string
		node  map[string]any
		disks int
		want  string // "" means valid
	}{
		{"mirror over all disks", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`, node, 2, ""},
		{"mirror then stripe", `{"logical_disks":[{"size_gb":10,"raid_level":"1","controller":"software"},{"size_gb":"MAX","raid_level":"0","controller":"software"}]}`, node, 2, ""},
		{"level as a number", `{"logical_disks":[{"size_gb":"MAX","raid_level":1,"controller":"software"}]}`, node, 2, ""},
		{"no logical disks", `{"logical_disks":[]}`, node, 2, "RAID config contains no logical disks"},
		{"three volumes", `{"logical_disks":[{"size_gb":1,"raid_level":"1","controller":"software"},{"size_gb":1,"raid_level":"1","controller":"software"},{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`, node, 2, "requires one or two logical disks"},
		{"hardware controller", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"megaraid"}]}`, node, 2, "'controller'='software'"},
		{"raid 5", `{"logical_disks":[{"size_gb":10,"raid_level":"1","controller":"software"},{"size_gb":"MAX","raid_level":"5","controller":"software"}]}`, node, 3, "does not support RAID level 5"},
		{"first not a mirror", `{"logical_disks":[{"size_gb":"MAX","raid_level":"0","controller":"software"}]}`, node, 2, "requires RAID-1 for the first logical disk"},
		{"two MAX", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"},{"size_gb":"MAX","raid_level":"0","controller":"software"}]}`, node, 2, "only one RAID device with size 'MAX'"},
		{"one disk", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`, node, 1, "with only 1 block devices found"},
		{"one physical disk", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software","physical_disks":[{"name":"/dev/vda"}]}]}`, node, 2, "at least 2 items"},
		{"duplicate names", `{"logical_disks":[{"size_gb":1,"raid_level":"1","controller":"software","volume_name":"a"},{"size_gb":"MAX","raid_level":"1","controller":"software","volume_name":"a"}]}`, node, 2, "Duplicate software RAID device name a"},
		{"two roots", `{"logical_disks":[{"size_gb":1,"raid_level":"1","controller":"software","is_root_volume":true},{"size_gb":"MAX","raid_level":"1","controller":"software","is_root_volume":true}]}`, node, 2, "only one logical disk to be marked as is_root_volume"},
		{"skip list needs names", `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`, skipNode, 2, "required to have a volume name"},
		{"bad size", `{"logical_disks":[{"size_gb":"lots","raid_level":"1","controller":"software"}]}`, node, 2, "size_gb must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(raidConfig(t, tc.cfg), tc.node, tc.disks)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			var ae *Error
			require.True(t, errors.As(err, &ae), "error %v", err)
			assert.Contains(t, ae.Details, tc.want)
			if strings.Contains(ae.Details, "Could not validate") {
				assert.Contains(t, ae.Details, "node-1", "IPA names the node")
			}
		})
	}
}

func TestRAIDHolders(t *testing.T) {
	s := func(v string) *string { return &v }
	disks := []inventory.Disk{{Name: "/dev/vda", Size: 5 << 30, Serial: s("A")}, {Name: "/dev/vdb", Size: 5 << 30, Serial: s("B")}, {Name: "/dev/vdc", Size: 8 << 30, Serial: s("C")}}
	lds, err := parseRAIDConfig(raidConfig(t, `{"logical_disks":[{"size_gb":1,"raid_level":"1","controller":"software","physical_disks":[{"serial":"C"},{"serial":"A"}]},{"size_gb":"MAX","raid_level":"0","controller":"software"}]}`))
	require.NoError(t, err)
	all, err := holders(disks, lds)
	require.NoError(t, err)
	assert.Equal(t, []string{"/dev/vdc", "/dev/vda"}, lds[0].holders, "physical_disks pick in their order")
	assert.Equal(t, []string{"/dev/vda", "/dev/vdb", "/dev/vdc"}, lds[1].holders, "no physical_disks: every disk")
	assert.Equal(t, []string{"/dev/vdc", "/dev/vda", "/dev/vdb"}, all)

	lds, _ = parseRAIDConfig(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software","physical_disks":[{"serial":"A"},{"serial":"Z"}]}]}`))
	_, err = holders(disks, lds)
	var ae *Error
	require.True(t, errors.As(err, &ae))
	assert.Contains(t, ae.Details, `No candidates for physical disk {"serial":"Z"}`)

	lds, _ = parseRAIDConfig(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software","physical_disks":[{"serial":"A"},{"serial":"A"}]}]}`))
	_, err = holders(disks, lds)
	require.True(t, errors.As(err, &ae))
	assert.Contains(t, ae.Details, "No candidates left")
}

func TestCreateConfigurationWithoutSoftwareRAID(t *testing.T) {
	assert.False(t, HasSoftwareRAID(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"megaraid"}]}`)))
	assert.True(t, HasSoftwareRAID(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`)))
}

func TestSkipVolumeNames(t *testing.T) {
	node := map[string]any{"properties": map[string]any{"skip_block_devices": []any{
		map[string]any{"name": "/dev/sda"}, map[string]any{"volume_name": "data"}, "junk"}}}
	assert.Equal(t, map[string]bool{"data": true}, SkipVolumeNames(node))
	assert.Empty(t, SkipVolumeNames(map[string]any{}))
}
