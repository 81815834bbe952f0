package vmedia

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseINI(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want INI
		err  string
	}{
		{"ironic's tls file", "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\n",
			INI{"DEFAULT": {"cafile": "/etc/ironic-python-agent/ironic.crt"}}, ""},
		{"comments, colon, case and dashes", "# c\n; c\n[default]\nAPI_URL: https://x:6385\nguard-special-filesystems=false\n\n[ssl]\ncert_file=/c\n",
			INI{"DEFAULT": {"api_url": "https://x:6385", "guard_special_filesystems": "false"}, "ssl": {"cert_file": "/c"}}, ""},
		{"later key wins", "[DEFAULT]\ninsecure=1\ninsecure = 0\n", INI{"DEFAULT": {"insecure": "0"}}, ""},
		{"continuation", "[DEFAULT]\ninspection_collectors = default,\n  logs\n", INI{"DEFAULT": {"inspection_collectors": "default,\nlogs"}}, ""},
		{"empty value", "[DEFAULT]\nadvertise_host =\n", INI{"DEFAULT": {"advertise_host": ""}}, ""},
		{"value keeps '=' and ':'", "[DEFAULT]\napi_url = http://a:1/?x=y\n", INI{"DEFAULT": {"api_url": "http://a:1/?x=y"}}, ""},
		{"bom", "\ufeff[DEFAULT]\na=b\n", INI{"DEFAULT": {"a": "b"}}, ""},
		{"option before section", "a=b\n", nil, "line 1: option \"a\" before any [section]"},
		{"unterminated section", "[DEFAULT\n", nil, "line 1: section header"},
		{"garbage", "[DEFAULT]\nnot an option\n", nil, "line 2:"},
		{"empty section", "[]\n", nil, "empty section"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseINI(strings.NewReader(tc.in))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseINI(f *testing.F) {
	for _, s := range []string{"[DEFAULT]\ncafile = /x\n", "[a]\nb: c\n  d\n", "x", "[", "[DEFAULT]\n=\n", "\ufeff;\n#\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ini, err := ParseINI(strings.NewReader(s))
		if err != nil {
			return
		}
		for sec, opts := range ini {
			if sec == "" {
				t.Fatal("empty section name accepted")
			}
			for k := range opts {
				if k == "" || strings.ContainsAny(k, "-\n") || k != strings.ToLower(k) {
					t.Fatalf("option name %q not normalised", k)
				}
			}
		}
	})
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{"ipa-api-url=http://10.0.0.1:6385 boot_method=vmedia\n", map[string]string{"ipa-api-url": "http://10.0.0.1:6385", "boot_method": "vmedia"}},
		{"a=1\n\ta=2   b==c noval\r\n", map[string]string{"a": "2", "b": "=c"}},
		{"k=\"q\"", map[string]string{"k": "\"q\""}},
		{"", map[string]string{}},
		{"=v", map[string]string{"": "v"}},
	} {
		assert.Equal(t, tc.want, ParseParams(tc.in), "%q", tc.in)
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"a=b c=d", "x", "=", "a==b\n\tc=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range ParseParams(s) {
			if strings.ContainsAny(k, " \t\n=") || strings.ContainsAny(v, " \t\n") {
				t.Fatalf("%q=%q: whitespace or '=' in a key", k, v)
			}
		}
	})
}

func TestOverrides(t *testing.T) {
	tls := ConfigFile{Name: "/etc/ironic-python-agent.d/ironic-tls.conf", INI: INI{"DEFAULT": {"cafile": "/etc/ironic-python-agent/ironic.crt"}}}
	first := ConfigFile{Name: "/etc/ironic-python-agent.d/10-a.conf", INI: INI{
		"DEFAULT": {"api_url": "https://a:6385", "insecure": "true", "ip_lookup_sleep": "3", "guard_special_filesystems": "false",
			"debug": "true", "md5_enabled": "false", "listen_port": "'9998'"},
		"ssl":      {"cert_file": "/s.crt", "key_file": "/s.key"},
		"oslo_log": {"x": "y"},
	}}
	second := ConfigFile{Name: "/etc/ironic-python-agent.d/20-b.conf", INI: INI{"DEFAULT": {"api_url": "https://b:6385", "inspection_callback_url": "https://b:5050/v1/continue"}}}

	ovs, ignored := Overrides([]ConfigFile{first, second, tls}, map[string]string{"ipa-debug": "0"})
	got := map[string]string{}
	for _, o := range ovs {
		got[o.Param] = o.Value
	}
	assert.Equal(t, map[string]string{
		"ipa-api-url":                   "https://b:6385", // the later file wins
		"ipa-insecure":                  "true",
		"ipa-ip-lookup-timeout":         "3",
		"ipa-guard-special-filesystems": "false",
		"ipa-listen-port":               "9998",
		"ipa-certfile":                  "/s.crt",
		"ipa-keyfile":                   "/s.key",
		"ipa-inspection-callback-url":   "https://b:5050/v1/continue",
		"ipa-cafile":                    "/etc/ironic-python-agent/ironic.crt",
		// debug is absent: the kernel's ipa-debug wins over the file.
	}, got)
	assert.ElementsMatch(t, []Ignored{
		{File: first.Name, Section: "DEFAULT", Option: "md5_enabled"},
		{File: first.Name, Section: "oslo_log", Option: "x"},
	}, ignored)
	assert.Contains(t, Flags(ovs), "--ipa-api-url=https://b:6385")

	ovs, _ = Overrides([]ConfigFile{first}, nil)
	assert.Contains(t, Flags(ovs), "--ipa-debug=true", "without ipa-debug on the kernel command line the file's debug applies")
}
