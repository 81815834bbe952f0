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
	_, _, err = raid.ApplyArgs(map[string]any{})
	require.True(t, errors.As(raidError(err), &ae), "error %v", err)
	assert.Equal(t, "InvalidCommandParamsError", ae.Type, "a bad argument is the caller's")
	other := errors.New("listing disks")
	assert.Same(t, other, raidError(other), "other errors pass unchanged")
}
