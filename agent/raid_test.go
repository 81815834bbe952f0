package agent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/inventory"
)

func TestRAIDStepsOffered(t *testing.T) {
	a := newTestAgent(t, "ipa-standalone=1")
	find := func(k StepKind, name string) map[string]any {
		for _, s := range a.steps.list(k) {
			if s["step"] == name {
				return s
			}
		}
		return nil
	}
	for _, k := range []StepKind{Clean, Service} {
		for _, n := range []string{"create_configuration", "delete_configuration"} {
			assert.Equal(t, map[string]any{"step": n, "priority": 0, "interface": "raid", "reboot_requested": false, "abortable": true}, find(k, n), "%s %s", k, n)
		}
	}
	apply := find(Deploy, "apply_configuration")
	require.NotNil(t, apply)
	assert.Equal(t, "raid", apply["interface"])
	assert.NotContains(t, apply, "abortable")
	ai := apply["argsinfo"].(map[string]ArgInfo)
	assert.True(t, ai["raid_config"].Required)
	assert.False(t, ai["delete_existing"].Required)
	assert.NotNil(t, find(Service, "apply_configuration"))
	assert.Nil(t, find(Deploy, "create_configuration"), "create_configuration is not a deploy step")
}

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
			_, err := validateRAIDConfig(raidConfig(t, tc.cfg), tc.node, tc.disks)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			var ae *Error
			require.True(t, errors.As(err, &ae), "error %v", err)
			assert.Equal(t, "SoftwareRAIDError", ae.Type)
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
	all, err := raidHolders(disks, lds)
	require.NoError(t, err)
	assert.Equal(t, []string{"/dev/vdc", "/dev/vda"}, lds[0].holders, "physical_disks pick in their order")
	assert.Equal(t, []string{"/dev/vda", "/dev/vdb", "/dev/vdc"}, lds[1].holders, "no physical_disks: every disk")
	assert.Equal(t, []string{"/dev/vdc", "/dev/vda", "/dev/vdb"}, all)

	lds, _ = parseRAIDConfig(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software","physical_disks":[{"serial":"A"},{"serial":"Z"}]}]}`))
	_, err = raidHolders(disks, lds)
	var ae *Error
	require.True(t, errors.As(err, &ae))
	assert.Contains(t, ae.Details, `No candidates for physical disk {"serial":"Z"}`)

	lds, _ = parseRAIDConfig(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software","physical_disks":[{"serial":"A"},{"serial":"A"}]}]}`))
	_, err = raidHolders(disks, lds)
	require.True(t, errors.As(err, &ae))
	assert.Contains(t, ae.Details, "No candidates left")
}

func TestDeleteExisting(t *testing.T) {
	for _, tc := range []struct {
		args map[string]any
		want bool
		bad  bool
	}{{map[string]any{}, true, false}, {map[string]any{"delete_existing": false}, false, false}, {map[string]any{"delete_existing": "True"}, true, false}, {map[string]any{"delete_existing": 3.0}, false, true}} {
		got, err := deleteExisting(tc.args)
		if tc.bad {
			assert.Error(t, err)
			continue
		}
		assert.NoError(t, err)
		assert.Equal(t, tc.want, got, "%v", tc.args)
	}
}

func TestCreateConfigurationWithoutSoftwareRAID(t *testing.T) {
	assert.False(t, hasSoftwareRAID(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"megaraid"}]}`)))
	assert.True(t, hasSoftwareRAID(raidConfig(t, `{"logical_disks":[{"size_gb":"MAX","raid_level":"1","controller":"software"}]}`)))
}

func TestSkipVolumeNames(t *testing.T) {
	node := map[string]any{"properties": map[string]any{"skip_block_devices": []any{
		map[string]any{"name": "/dev/sda"}, map[string]any{"volume_name": "data"}, "junk"}}}
	assert.Equal(t, map[string]bool{"data": true}, skipVolumeNames(node))
	assert.Empty(t, skipVolumeNames(map[string]any{}))
}
