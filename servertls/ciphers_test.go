package servertls

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseOpenSSLCiphers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		suites  []uint16
		ignored []string
	}{
		{"", nil, nil},
		{"ECDHE-RSA-AES256-GCM-SHA384", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}, nil},
		{"ECDHE-ECDSA-CHACHA20-POLY1305:ecdhe-ecdsa-aes128-gcm-sha256", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, nil},
		{"HIGH:!aNULL:!MD5", nil, []string{"HIGH", "!aNULL", "!MD5"}},
		{"DHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256 RC4-SHA", []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, []string{"DHE-RSA-AES256-GCM-SHA384", "RC4-SHA"}},
		{"TLS_AES_128_GCM_SHA256", nil, []string{"TLS_AES_128_GCM_SHA256"}},
		{"AES128-SHA:AES128-SHA", []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, nil},
	} {
		suites, ignored := ParseOpenSSLCiphers(tc.in)
		assert.Equal(t, tc.suites, suites, tc.in)
		assert.Equal(t, tc.ignored, ignored, tc.in)
	}
}

func TestSuites(t *testing.T) {
	for _, tc := range []struct {
		list      string
		suites    []uint16
		ignored   []string
		defaulted bool
	}{
		{"", DefaultCipherSuites, nil, true},
		{"DEFAULT:!aNULL", DefaultCipherSuites, []string{"DEFAULT", "!aNULL"}, true},
		{"ECDHE-ECDSA-AES256-GCM-SHA384:HIGH", []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, []string{"HIGH"}, false},
	} {
		suites, ignored, defaulted := Suites(tc.list)
		assert.Equal(t, tc.suites, suites, tc.list)
		assert.Equal(t, tc.ignored, ignored, tc.list)
		assert.Equal(t, tc.defaulted, defaulted, tc.list)
	}
}

// handshake12 connects with TLS 1.2 offering only suite.
func handshake12(t *testing.T, cfg *tls.Config, suite uint16) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite},
	})
	if err == nil {
		c.Close()
	}
	return err
}

func TestServerConfig(t *testing.T) {
	cert, _, err := SelfSigned("127.0.0.1", "p256", time.Now())
	require.NoError(t, err)
	for _, tc := range []struct {
		name       string
		minVersion string
		suites     []uint16
		accepted   []uint16
		refused    []uint16
	}{
		{"defaults", "1.2", DefaultCipherSuites,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		{"restricted", "", []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
		{"TLS 1.3 only", "1.3", DefaultCipherSuites, nil,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ServerConfig(cert, tc.minVersion, tc.suites)
			for _, s := range tc.accepted {
				assert.NoError(t, handshake12(t, cfg, s), "suite %s", tls.CipherSuiteName(s))
			}
			for _, s := range tc.refused {
				assert.Error(t, handshake12(t, cfg, s), "suite %s", tls.CipherSuiteName(s))
			}
		})
	}
}

// FuzzParseOpenSSLCiphers: whatever the list, every name is either a
// suite or ignored, suites come once each and are ones Go serves.
func FuzzParseOpenSSLCiphers(f *testing.F) {
	for _, s := range []string{"", "HIGH:!aNULL:!MD5", "ECDHE-RSA-AES128-GCM-SHA256, aes128-sha AES128-SHA", "::,, \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		suites, ignored := ParseOpenSSLCiphers(list)
		names := strings.FieldsFunc(list, func(r rune) bool { return r == ':' || r == ',' || r == ' ' })
		if len(suites) > len(names) || len(ignored) > len(names) {
			t.Fatalf("%q: %d suites and %d ignored from %d names", list, len(suites), len(ignored), len(names))
		}
		seen := map[uint16]bool{}
		for _, id := range suites {
			if seen[id] {
				t.Fatalf("%q: suite %#x twice", list, id)
			}
			seen[id] = true
			if tls.CipherSuiteName(id) == "" || strings.HasPrefix(tls.CipherSuiteName(id), "0x") {
				t.Fatalf("%q: unknown suite %#x", list, id)
			}
		}
		for _, n := range ignored {
			if _, ok := openSSLCipherNames[strings.ToUpper(n)]; ok {
				t.Fatalf("%q: servable %q ignored", list, n)
			}
		}
	})
}
