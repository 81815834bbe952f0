package kernelparams

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		line string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"a=1  b=\"x y\"\tc= d e=f=g\n", map[string]string{"a": "1", "b": "x y", "c": "", "e": "f=g"}},
		{`BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://10.1.2.3:6385`, map[string]string{"BOOT_IMAGE": "/vmlinuz", "ipa-api-url": "http://10.1.2.3:6385"}},
		{`sshkey="ssh-ed25519 AAAA op@metal3" console=ttyS0`, map[string]string{"sshkey": "ssh-ed25519 AAAA op@metal3", "console": "ttyS0"}},
		{`"a=b c"`, map[string]string{"a": "b c"}},                      // the quote may open before the key
		{`a="open quote b=2`, map[string]string{"a": "open quote b=2"}}, // an unclosed quote runs to the end
		{"a=1 a=2", map[string]string{"a": "2"}},
		{"=novalue x==y", map[string]string{"x": "=y"}},
		{"a=1\r\nb=2", map[string]string{"a": "1", "b": "2"}},
	} {
		assert.Equal(t, tc.want, Split(tc.line), "%q", tc.line)
	}
}

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
		err  bool
	}{
		{"1", true, false}, {"true", true, false}, {"True", true, false}, {" yes ", true, false},
		{"on", true, false}, {"y", true, false}, {"T", true, false},
		{"0", false, false}, {"false", false, false}, {"NO", false, false}, {"off", false, false},
		{"n", false, false}, {"f", false, false}, {"", false, false},
		{"maybe", false, true}, {"2", false, true}, {"yess", false, true},
	} {
		got, err := ParseBool(tc.in)
		if tc.err {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		assert.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

func TestParseSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{"1.5", 1500 * time.Millisecond, false},
		{" 1e3 ", 1000 * time.Second, false},
		{"1e9", 1e9 * time.Second, false},
		{"1e10", 0, true},
		{"-1", 0, true},
		{"NaN", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	} {
		got, err := ParseSeconds(tc.in)
		if tc.err {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		assert.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"default,logs", []string{"default", "logs"}},
		{" /dev/loop3 ,, /dev/loop4 ", []string{"/dev/loop3", "/dev/loop4"}},
	} {
		assert.Equal(t, tc.want, SplitList(tc.in), "%q", tc.in)
	}
}

func TestCheckHTTPURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"http://10.1.2.3:6385", true},
		{"https://[::1]:6385/baremetal", true},
		{"10.0.0.1:6385", false},
		{"ftp://a", false},
		{"http://", false},
		{"nohost", false},
		{"http://a b", false},
	} {
		err := CheckHTTPURL(tc.in)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.in, err)
	}
}

// settings is a small table of every setter kind, for Parse's tests.
type settings struct {
	Name    string
	Debug   bool
	Workers int
	Port    int
	Wait    time.Duration
	Devices []string
}

var table = []Param[settings]{
	{"name", "agent", "a name", String(func(s *settings) *string { return &s.Name })},
	{"debug", "0", "debug logging", Bool(func(s *settings) *bool { return &s.Debug })},
	{"workers", "4", "workers", Int(func(s *settings) *int { return &s.Workers }, 1)},
	{"port", "9999", "port", Port(func(s *settings) *int { return &s.Port })},
	{"wait", "1.5", "seconds", Seconds(func(s *settings) *time.Duration { return &s.Wait })},
	{"devices", "", "devices", List(func(s *settings) *[]string { return &s.Devices })},
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string
		args    []string
		want    settings
		badName string // the *Error's parameter, or "" for success
		anyErr  bool   // an error that names no parameter (flags)
	}{
		{name: "defaults", want: settings{Name: "agent", Workers: 4, Port: 9999, Wait: 1500 * time.Millisecond}},
		{name: "kernel command line", cmdline: `ro quiet name="a b" debug=on workers=2 port=1 wait=0 devices=/dev/a,/dev/b other=x`,
			want: settings{Name: "a b", Debug: true, Workers: 2, Port: 1, Devices: []string{"/dev/a", "/dev/b"}}},
		{name: "flags win", cmdline: "port=1 debug=1 workers=3", args: []string{"--port=2", "-debug", "0", "--devices=/dev/c"},
			want: settings{Name: "agent", Workers: 3, Port: 2, Wait: 1500 * time.Millisecond, Devices: []string{"/dev/c"}}},
		{name: "bad bool", cmdline: "debug=maybe", badName: "debug"},
		{name: "bad int", cmdline: "workers=many", badName: "workers"},
		{name: "int under its minimum", cmdline: "workers=0", badName: "workers"},
		{name: "port out of range", cmdline: "port=70000", badName: "port"},
		{name: "bad seconds", cmdline: "wait=-2", badName: "wait"},
		{name: "bad flag value", args: []string{"--port=nine"}, badName: "port"},
		{name: "unknown flag", args: []string{"--no-such=1"}, anyErr: true},
		{name: "positional argument", args: []string{"stray"}, anyErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got settings
			values, err := Parse(table, &got, tc.cmdline, tc.args)
			switch {
			case tc.badName != "":
				var pe *Error
				require.True(t, errors.As(err, &pe), "want an *Error, got %v", err)
				assert.Equal(t, tc.badName, pe.Param)
				assert.Contains(t, err.Error(), tc.badName)
				assert.NotContains(t, err.Error(), "\n")
			case tc.anyErr:
				assert.Error(t, err)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				assert.Len(t, values, len(table), "a value for every parameter")
				assert.NotContains(t, values, "other", "unknown kernel words are not parameters")
			}
		})
	}
}

func TestSet(t *testing.T) {
	var s settings
	_, err := Parse(table, &s, "", nil)
	require.NoError(t, err)
	require.NoError(t, Set(table, &s, "name", "later"))
	assert.Equal(t, "later", s.Name)
	require.NoError(t, Set(table, &s, "debug", "True"))
	assert.True(t, s.Debug)
	var pe *Error
	assert.ErrorAs(t, Set(table, &s, "debug", "very"), &pe)
	assert.Equal(t, "debug", pe.Param)
	assert.ErrorAs(t, Set(table, &s, "no-such", "1"), &pe)
	assert.Equal(t, "no-such", pe.Param)
	assert.True(t, s.Debug, "a refused value changes nothing")
}

func TestPrintDefaults(t *testing.T) {
	var b bytes.Buffer
	PrintDefaults(&b, table)
	out := b.String()
	assert.Contains(t, out, "  --port=\"9999\"\n\tport\n")
	assert.Less(t, strings.Index(out, "--debug="), strings.Index(out, "--wait="), "sorted by name")
	assert.Equal(t, len(table), strings.Count(out, "  --"))
}

// FuzzSplit: whatever the line, Split never panics, never makes an empty
// key or a key with "=" or a quote, and keeps no quote in a value.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"ipa-api-url=http://127.0.0.1:6385 BOOTIF=01-aa-bb-cc-dd-ee-ff",
		`ipa-ntp-server="a b" x= "=" ====`,
		"a=\"\"\"b", "\x00=\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for k, v := range Split(line) {
			if k == "" || strings.ContainsAny(k, `="`) {
				t.Fatalf("bad key %q from %q", k, line)
			}
			if strings.Contains(v, `"`) {
				t.Fatalf("value %q from %q keeps a quote", v, line)
			}
		}
	})
}

// FuzzParse: whatever the line, Parse never panics, errors stay on one
// line, and what it accepts is within each setter's bounds.
func FuzzParse(f *testing.F) {
	f.Add(`name="a b" debug=on workers=2 port=1 wait=0.5 devices=/dev/a`)
	f.Add("port=-1 wait=1e400 workers=9999999999999999999")
	f.Add(`"=" ==== debug=`)
	f.Fuzz(func(t *testing.T, line string) {
		var s settings
		_, err := Parse(table, &s, line, nil)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if s.Port < 1 || s.Port > 65535 || s.Workers < 1 || s.Wait < 0 {
			t.Fatalf("accepted out-of-bounds settings from %q: %+v", line, s)
		}
	})
}
