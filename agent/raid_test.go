package agent

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/raid"
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

// TestRAIDErrorIsSoftwareRAIDError: package raid's errors reach Ironic
// as IPA's SoftwareRAIDError with raid's wording as details.
func TestRAIDErrorIsSoftwareRAIDError(t *testing.T) {
	_, err := raid.Validate(map[string]any{"logical_disks": []any{}}, map[string]any{"uuid": "node-1"}, 2)
	var ae *Error
	require.True(t, errors.As(raidError(err), &ae), "error %v", err)
	assert.Equal(t, "SoftwareRAIDError", ae.Type)
	assert.Equal(t, 500, ae.Code)
	assert.Contains(t, ae.Details, "RAID config contains no logical disks")
	other := errors.New("listing disks")
	assert.Same(t, other, raidError(other), "other errors pass unchanged")
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
