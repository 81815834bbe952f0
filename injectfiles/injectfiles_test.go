package injectfiles

import (
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseInjectFiles(t *testing.T) {
	files, err := Parse(
		[]any{map[string]any{"path": "/etc/motd", "content": "aGk=", "mode": float64(0o644)}},
		[]any{map[string]any{"path": "/authorized_keys", "partition": float64(2), "deleted": true}})
	require.NoError(t, err)
	require.Len(t, files, 2, "the node's property and the step's argument are merged")
	assert.Equal(t, 0o644, *files[0].Mode)
	assert.Equal(t, "2", files[1].Partition)

	for name, tc := range map[string]struct {
		props, args any
		want        string
	}{
		"property not a list":    {map[string]any{}, nil, "node property must be a list"},
		"args not a list":        {nil, "x", "`files` argument must be a list"},
		"unknown field":          {nil, []any{map[string]any{"path": "/etc/x", "colour": "red"}}, "unexpected fields"},
		"no path":                {nil, []any{map[string]any{"content": "aGk="}}, "expected a path"},
		"root needs a partition": {nil, []any{map[string]any{"path": "/x", "content": "aGk="}}, `requires "partition"`},
		"directory":              {nil, []any{map[string]any{"path": "/etc/x/", "content": "aGk="}}, "directories not supported"},
		"content and deleted":    {nil, []any{map[string]any{"path": "/etc/x", "content": "aGk=", "deleted": true}}, "content cannot be used with deleted"},
		"mode not a number":      {nil, []any{map[string]any{"path": "/etc/x", "mode": "0644"}}, "mode must be a number"},
	} {
		_, err := Parse(tc.props, tc.args)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		var ie *InvalidError
		require.ErrorAs(t, err, &ie, name)
	}
}

func TestInjectPathsStayInside(t *testing.T) {
	for in, want := range map[string]string{"/etc/motd": "etc/motd", "etc//x/../y": "etc/y", "/../../etc/shadow": "etc/shadow", " /a/b ": "a/b"} {
		got, err := relPath(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"/", "", "/.."} {
		_, err := relPath(bad)
		assert.Error(t, err, bad)
	}
}

func TestExpandURL(t *testing.T) {
	node := map[string]any{"uuid": "n-1", "extra": map[string]any{"role": "db"}}
	ports := []any{map[string]any{"address": "52:54:00:00:00:01"}}
	got, err := expandURL("http://s/{node[uuid]}/{node[extra][role]}/{ports[0][address]}", node, ports)
	require.NoError(t, err)
	assert.Equal(t, "http://s/n-1/db/52:54:00:00:00:01", got)
	_, err = expandURL("http://s/{node[missing]}", node, ports)
	assert.Error(t, err)
	_, err = expandURL("http://s/{ports[3][address]}", node, ports)
	assert.Error(t, err)
}

// TestUnixMode: IPA's integer modes keep their setuid, setgid and sticky
// bits (fs.FileMode(0o4755) would drop them).
func TestUnixMode(t *testing.T) {
	for _, tc := range []struct {
		in   int
		want fs.FileMode
	}{
		{0o644, 0o644},
		{0o4755, fs.ModeSetuid | 0o755},
		{0o2750, fs.ModeSetgid | 0o750},
		{0o1777, fs.ModeSticky | 0o777},
		{0o7000, fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky},
		{0o100644, 0o644}, // a stat st_mode: chmod(2) takes only 07777
	} {
		if got := UnixMode(tc.in); got != tc.want {
			t.Errorf("UnixMode(%#o) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
