package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWantsLLDP: the agent listens for LLDP for the inventory
// (ipa-collect-lldp) and for inspection's lldp collector, which listens in
// IPA whatever ipa-collect-lldp says; otherwise it stays off the wire.
func TestWantsLLDP(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"ipa-api-url=http://a", false},
		{"ipa-api-url=http://a ipa-collect-lldp=1", true},
		{"ipa-inspection-callback-url=http://i:5050/v1/continue", false},
		{"ipa-inspection-callback-url=http://i:5050/v1/continue ipa-collect-lldp=1", true},
		{"ipa-inspection-callback-url=http://i:5050/v1/continue ipa-inspection-collectors=default,lldp", true},
		{"ipa-api-url=http://a ipa-inspection-collectors=default,lldp", false},
	} {
		t.Run(tc.cmdline, func(t *testing.T) {
			c, err := ParseConfig(tc.cmdline, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, WantsLLDP(c))
		})
	}
}
