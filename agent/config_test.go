package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://10.1.2.3:6385", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"http://10.1.2.3:6385"}, c.APIURLs)
	assert.Equal(t, "::", c.ListenHost)
	assert.Equal(t, 9999, c.ListenPort)
	assert.Equal(t, 9999, c.AdvertisePort, "advertise port defaults to the listen port")
	assert.Equal(t, "http", c.AdvertiseProtocol)
	assert.Equal(t, 600*time.Second, c.LookupTimeout)
	assert.Equal(t, time.Second, c.LookupInterval)
	assert.Equal(t, 6, c.IPLookupAttempts)
	assert.Equal(t, 10*time.Second, c.IPLookupTimeout)
	assert.True(t, c.EnableAutoTLS)
	assert.True(t, c.GuardSpecialFilesystems)
	assert.Equal(t, []string{"default", "logs"}, c.InspectionCollectors)
	assert.Equal(t, 10, c.DiskWaitAttempts)
	assert.Equal(t, 3*time.Second, c.DiskWaitDelay)
	assert.Equal(t, 60*time.Second, c.ImageConnectionTimeout)
	assert.Equal(t, 9, c.ImageConnectionRetries)
	assert.Equal(t, 30*time.Second, c.LLDPTimeout)
	assert.Equal(t, "simulated", c.Power)
	assert.False(t, c.Standalone)
	assert.Nil(t, c.Devices)
}

func TestConfigFromIronicPXE(t *testing.T) {
	// What Ironic 21.4 writes into a PXE config (notes, section 2).
	line := `ipa-debug=1 ipa-api-url=http://127.0.0.1:6385 ipa-global-request-id=req-1b2c BOOTIF=01-52-54-00-12-34-56 ipa-agent-token=abc`
	c, err := ParseConfig(line, nil)
	require.NoError(t, err)
	assert.True(t, c.Debug)
	assert.Equal(t, "req-1b2c", c.GlobalRequestID)
	assert.Equal(t, "01-52-54-00-12-34-56", c.BootIF)
	assert.Equal(t, "abc", c.AgentToken)
}

func TestConfigFlagsWin(t *testing.T) {
	c, err := ParseConfig("ipa-api-url=http://a:1 ipa-listen-port=1234 ipa-insecure=0",
		[]string{"--ipa-listen-port=19999", "--ipa-insecure", "1", "-goipa-devices=/dev/loop3,/dev/loop4"})
	require.NoError(t, err)
	assert.Equal(t, 19999, c.ListenPort)
	assert.Equal(t, 19999, c.AdvertisePort)
	assert.True(t, c.Insecure)
	assert.Equal(t, []string{"/dev/loop3", "/dev/loop4"}, c.Devices)
}

func TestConfigQuotedAndUnknown(t *testing.T) {
	c, err := ParseConfig(`foo=bar novalue ipa-ntp-server="pool ntp" ipa-standalone=yes unknown-param=@@@`, nil)
	require.NoError(t, err)
	assert.Equal(t, "pool ntp", c.NTPServer)
	assert.True(t, c.Standalone)
}

func TestConfigErrorsNameTheParameter(t *testing.T) {
	for _, tc := range []struct {
		line, param string
	}{
		{"ipa-api-url=10.0.0.1:6385", "ipa-api-url"},
		{"ipa-api-url=http://a ipa-listen-port=nine", "ipa-listen-port"},
		{"ipa-api-url=http://a ipa-listen-port=70000", "ipa-listen-port"},
		{"ipa-api-url=http://a ipa-insecure=maybe", "ipa-insecure"},
		{"ipa-api-url=http://a ipa-lookup-timeout=soon", "ipa-lookup-timeout"},
		{"ipa-api-url=http://a ipa-advertise-protocol=ftp", "ipa-advertise-protocol"},
		{"ipa-api-url=http://a goipa-devices=loop3", "goipa-devices"},
		{"ipa-api-url=http://a goipa-power=maybe", "goipa-power"},
		{"ipa-api-url=http://a ipa-inject-files-priority=100", "ipa-inject-files-priority"},
		{"ipa-api-url=http://a ipa-ironic-api-version=one", "ipa-ironic-api-version"},
		{"ipa-api-url=mdns,http://a", "ipa-api-url"},
		{"ipa-api-url=http://a ipa-inspection-callback-url=nohost", "ipa-inspection-callback-url"},
		{"ipa-listen-port=1", "ipa-api-url"}, // nothing to talk to
	} {
		_, err := ParseConfig(tc.line, nil)
		var ce *ConfigError
		if assert.True(t, errors.As(err, &ce), "%q: want a ConfigError, got %v", tc.line, err) {
			assert.Equal(t, tc.param, ce.Param, tc.line)
			assert.Contains(t, err.Error(), tc.param)
			assert.NotContains(t, err.Error(), "\n", "one line")
		}
	}
}

func TestConfigUnknownFlag(t *testing.T) {
	_, err := ParseConfig("ipa-standalone=1", []string{"--no-such-flag=1"})
	require.Error(t, err)
}

func FuzzParseConfig(f *testing.F) {
	f.Add("ipa-api-url=http://127.0.0.1:6385 BOOTIF=01-aa-bb-cc-dd-ee-ff")
	f.Add(`ipa-standalone=1 ipa-listen-port=19999 ipa-ntp-server="a b"`)
	f.Add("ipa-api-url=http://[::1]:6385,https://x:1 ipa-lookup-timeout=1e3 ipa-debug=on")
	f.Add(`"=" ==== ipa-listen-port=-1`)
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseConfig(line, nil)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if c.ListenPort < 1 || c.ListenPort > 65535 || c.AdvertisePort < 1 {
			t.Fatalf("accepted bad port: %+v", c)
		}
		for _, u := range c.APIURLs {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("accepted URL without scheme %q", u)
			}
		}
	})
}

func TestConfigMDNS(t *testing.T) {
	for _, tc := range []struct {
		line                   string
		apiMDNS, inspMDNS, use bool
		apiURLs                []string
		callback               string
		allowed                []string
	}{
		{line: "ipa-api-url=mdns", apiMDNS: true, allowed: []string{"inspection_callback_url", "ntp_server"}},
		{line: "ipa-inspection-callback-url=mdns", inspMDNS: true, allowed: []string{"inspection_callback_url", "ntp_server"}},
		{line: "ipa-api-url=mdns ipa-inspection-callback-url=mdns ipa-mdns-allowed-overrides=debug,ntp_server", apiMDNS: true, inspMDNS: true, allowed: []string{"debug", "ntp_server"}},
		{line: "ipa-use-mdns=1", use: true, allowed: []string{"inspection_callback_url", "ntp_server"}},
		{line: "ipa-api-url=http://a:6385 ipa-inspection-callback-url=http://a:5050/v1/continue", apiURLs: []string{"http://a:6385"}, callback: "http://a:5050/v1/continue", allowed: []string{"inspection_callback_url", "ntp_server"}},
		{line: "ipa-api-url=mdns ipa-mdns-allowed-overrides=", apiMDNS: true},
	} {
		t.Run(tc.line, func(t *testing.T) {
			c, err := ParseConfig(tc.line, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.apiMDNS, c.APIFromMDNS)
			assert.Equal(t, tc.inspMDNS, c.InspectionFromMDNS)
			assert.Equal(t, tc.use, c.UseMDNS)
			assert.Equal(t, tc.apiURLs, c.APIURLs)
			assert.Equal(t, tc.callback, c.InspectionCallbackURL)
			assert.Equal(t, tc.allowed, c.MDNSAllowedOverrides)
		})
	}
}

func TestConfigOverride(t *testing.T) {
	c, err := ParseConfig("ipa-api-url=http://a", nil)
	require.NoError(t, err)
	require.NoError(t, c.Override("ipa-ntp-server", "10.1.1.1"))
	assert.Equal(t, "10.1.1.1", c.NTPServer)
	require.NoError(t, c.Override("ipa-debug", "True"))
	assert.True(t, c.Debug)
	var ce *ConfigError
	assert.ErrorAs(t, c.Override("ipa-debug", "very"), &ce)
	assert.ErrorAs(t, c.Override("ipa-no-such", "1"), &ce)
}

// TestConfigDebugLogin: sshkey and rootpwd as DIB's dynamic-login and
// Metal3 (IRONIC_RAMDISK_SSH_KEY) put them on the kernel command line,
// the key quoted because it has spaces. Checking them is cmd/goipa's job.
func TestConfigDebugLogin(t *testing.T) {
	line := `ipa-api-url=http://127.0.0.1:6385 sshkey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoipa op@metal3" rootpwd="$6$salt$abc/def" console=ttyS0`
	c, err := ParseConfig(line, nil)
	require.NoError(t, err)
	assert.Equal(t, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoipa op@metal3", c.SSHKey)
	assert.Equal(t, "$6$salt$abc/def", c.RootPwd)

	c, err = ParseConfig("ipa-api-url=http://127.0.0.1:6385", nil)
	require.NoError(t, err)
	assert.Empty(t, c.SSHKey)
	assert.Empty(t, c.RootPwd)
}
