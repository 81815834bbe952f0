package servertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// ClockSkew is how far back the certificate starts, so a BMC-set clock a
// little behind the conductor's still accepts it (IPA's 3600 s).
const ClockSkew = time.Hour

// Validity is how long the certificate is valid from now (IPA's 30 days).
const Validity = 30 * 24 * time.Hour

// SelfSigned makes the auto-TLS certificate as IPA does: an EC key on
// curve ("p256", as IPA 2023.1, when empty; "p384" or "p521"),
// self-signed, CN = hostname, one critical subjectAltName naming host (an
// IP address or a DNS name), valid from now-ClockSkew to now+Validity.
// It returns the certificate to serve and its PEM: Ironic stores the PEM
// and uses it as the CA for every call to the agent, checking the address
// against it.
func SelfSigned(host, curve string, now time.Time) (tls.Certificate, string, error) {
	var c elliptic.Curve
	switch curve {
	case "p256", "":
		c = elliptic.P256()
	case "p384":
		c = elliptic.P384()
	case "p521":
		c = elliptic.P521()
	default:
		return tls.Certificate{}, "", fmt.Errorf("servertls: curve %q: %w", curve, errUnknownCurve)
	}
	key, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	san, err := subjectAltName(host)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cn, _ := os.Hostname()
	if cn == "" {
		cn = host
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: cn},
		Issuer:          pkix.Name{CommonName: cn},
		NotBefore:       now.Add(-ClockSkew),
		NotAfter:        now.Add(Validity),
		ExtraExtensions: []pkix.Extension{san},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return cert, string(certPEM), nil
}

var errUnknownCurve = errors.New("not p256, p384 or p521")

// subjectAltName builds the critical SAN extension by hand: Go's template
// fields would mark it non-critical because the subject is not empty.
func subjectAltName(host string) (pkix.Extension, error) {
	var name asn1.RawValue
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		name = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: ip}
	} else {
		name = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(host)}
	}
	val, err := asn1.Marshal([]asn1.RawValue{name})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("subjectAltName for %q: %w", host, err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: val}, nil
}
