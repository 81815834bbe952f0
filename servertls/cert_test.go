package servertls

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelfSignedCertAsIPAMakesIt(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		host  string
		curve string
		bits  int
	}{
		{"192.0.2.10", "p256", 256},
		{"2001:db8::5", "p384", 384},
		{"agent.example", "p521", 521},
		{"198.51.100.7", "", 256}, // IPA 2023.1's curve when none is named
	} {
		cert, pemText, err := SelfSigned(tc.host, tc.curve, now)
		require.NoError(t, err)
		block, _ := pem.Decode([]byte(pemText))
		require.NotNil(t, block)
		c, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		assert.Equal(t, c.Subject.CommonName, c.Issuer.CommonName, "self-signed")
		assert.Equal(t, now.Add(-time.Hour), c.NotBefore, "clock skew allowance")
		assert.Equal(t, now.Add(30*24*time.Hour), c.NotAfter)
		require.Len(t, c.Extensions, 1, "one extension only, as IPA's")
		assert.True(t, c.Extensions[0].Critical, "critical subjectAltName")
		if ip := net.ParseIP(tc.host); ip != nil {
			require.Len(t, c.IPAddresses, 1)
			assert.True(t, c.IPAddresses[0].Equal(ip))
		} else {
			assert.Equal(t, []string{tc.host}, c.DNSNames)
		}
		pub := c.PublicKey.(*ecdsa.PublicKey)
		assert.Equal(t, tc.bits, pub.Curve.Params().BitSize)
		assert.NotNil(t, cert.PrivateKey)
		// It verifies as its own CA for its address, as Ironic uses it.
		pool := x509.NewCertPool()
		pool.AddCert(c)
		_, err = c.Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.host, CurrentTime: now})
		assert.NoError(t, err)
	}
}

func TestSelfSignedRefusesUnknownCurve(t *testing.T) {
	for _, curve := range []string{"p224", "P256", "ed25519"} {
		_, _, err := SelfSigned("192.0.2.10", curve, time.Now())
		assert.ErrorIs(t, err, errUnknownCurve, curve)
	}
}
