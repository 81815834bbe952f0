package agent

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/servertls"
)

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

func TestServerTLSCipherSuites(t *testing.T) {
	cert, _, err := servertls.SelfSigned("127.0.0.1", "p256", time.Now())
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		cmdline  string
		lookup   map[string]any
		accepted []uint16
		refused  []uint16
		logged   string
	}{
		{"defaults", "", nil,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, ""},
		{"kernel parameter", "ipa-tls-cipher-suites=ECDHE-ECDSA-AES256-GCM-SHA384:HIGH", nil,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, "HIGH"},
		{"lookup wins", "ipa-tls-cipher-suites=ECDHE-ECDSA-AES256-GCM-SHA384",
			map[string]any{"tls_cipher_suites": "ECDHE-ECDSA-CHACHA20-POLY1305"},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, ""},
		{"nothing servable keeps the defaults", "ipa-tls-cipher-suites=DEFAULT:!aNULL", nil,
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, nil, "keeping the default"},
		{"lookup null", "", map[string]any{"tls_cipher_suites": nil},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			a := newTestAgent(t, "ipa-standalone=1 "+tc.cmdline, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			a.lookupConfig = tc.lookup
			cfg := a.serverTLS(cert)
			for _, s := range tc.accepted {
				assert.NoError(t, handshake12(t, cfg, s), "suite %s", tls.CipherSuiteName(s))
			}
			for _, s := range tc.refused {
				assert.Error(t, handshake12(t, cfg, s), "suite %s", tls.CipherSuiteName(s))
			}
			if tc.logged != "" {
				assert.Contains(t, logs.String(), tc.logged)
			}
		})
	}
}

func TestAgentTokenRequired(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef0123"
	// With ipa-agent-token-required, no command runs before Ironic hands
	// a token over; without it, a token-less POST does.
	for _, tc := range []struct {
		cmdline string
		lookup  map[string]any
		want    int
	}{
		{"ipa-standalone=1", nil, 200},
		{"ipa-standalone=1 ipa-agent-token-required=1", nil, 401},
		{"ipa-standalone=1", map[string]any{"agent_token_required": true}, 401},
		{"ipa-standalone=1", map[string]any{"agent_token_required": false}, 200},
	} {
		a := newTestAgent(t, tc.cmdline)
		a.lookupConfig = tc.lookup
		c := newAPI(t, a)
		code, _ := c.post("standby.sync", map[string]any{}, "")
		assert.Equal(t, tc.want, code, "%s %v", tc.cmdline, tc.lookup)
	}
	// Once the token is there, it is what opens the door.
	a := newTestAgent(t, "ipa-standalone=1 ipa-agent-token-required=1")
	a.applyLookup(&LookupResult{Node: map[string]any{"uuid": "u"}, Config: map[string]any{"agent_token": tok, "agent_token_required": true}})
	c := newAPI(t, a)
	code, _ := c.post("standby.sync", map[string]any{}, "?agent_token="+tok)
	assert.Equal(t, 200, code)
	code, _ = c.post("standby.sync", map[string]any{}, "?agent_token=wrong")
	assert.Equal(t, 401, code)
}
