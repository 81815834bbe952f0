package raid

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApplyArgs(t *testing.T) {
	cfg := map[string]any{"logical_disks": []any{}}
	for _, tc := range []struct {
		name    string
		args    map[string]any
		want    bool
		wantErr string
	}{
		{name: "delete_existing unset: true", args: map[string]any{"raid_config": cfg}, want: true},
		{name: "delete_existing null: true", args: map[string]any{"raid_config": cfg, "delete_existing": nil}, want: true},
		{name: "false", args: map[string]any{"raid_config": cfg, "delete_existing": false}, want: false},
		{name: "string form", args: map[string]any{"raid_config": cfg, "delete_existing": "True"}, want: true},
		{name: "string false", args: map[string]any{"raid_config": cfg, "delete_existing": "0"}, want: false},
		{name: "a number", args: map[string]any{"raid_config": cfg, "delete_existing": 3.0}, wantErr: "delete_existing must be a boolean, not 3"},
		{name: "a word", args: map[string]any{"raid_config": cfg, "delete_existing": "maybe"}, wantErr: "delete_existing must be a boolean"},
		{name: "no raid_config", args: map[string]any{}, wantErr: "raid_config is required and must be an object"},
		{name: "raid_config not an object", args: map[string]any{"raid_config": "raid1"}, wantErr: "raid_config is required and must be an object, got raid1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, del, err := ApplyArgs(tc.args)
			if tc.wantErr != "" {
				var ae *ArgError
				require.True(t, errors.As(err, &ae), "%v", err)
				assert.Contains(t, ae.Msg, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, cfg, got)
			assert.Equal(t, tc.want, del)
		})
	}
}
