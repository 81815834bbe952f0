package servertls

import (
	"crypto/tls"
	"strings"
)

// DefaultCipherSuites are the TLS 1.2 suites served unless told
// otherwise: the AEAD ECDHE suites IPA allows.
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// openSSLCipherNames maps the OpenSSL names of the TLS 1.2 suites Go
// serves and does not call insecure to Go's IDs. IPA hands
// ipa-tls-cipher-suites (and lookup's tls_cipher_suites) to OpenSSL's
// set_ciphers, so operators write OpenSSL names.
var openSSLCipherNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// ParseOpenSSLCiphers turns an OpenSSL cipher list (names separated by
// ':', ',' or spaces) into Go's suite IDs, in the order given. What Go
// cannot serve, or what is not a single suite name (OpenSSL's keywords
// such as HIGH or !aNULL, TLS 1.3 names, which are not configurable in
// Go), comes back in ignored. An empty list means "the defaults".
func ParseOpenSSLCiphers(s string) (suites []uint16, ignored []string) {
	seen := map[uint16]bool{}
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := openSSLCipherNames[strings.ToUpper(name)]
		if !ok {
			ignored = append(ignored, name)
			continue
		}
		if !seen[id] {
			seen[id] = true
			suites = append(suites, id)
		}
	}
	return suites, ignored
}

// Suites picks the TLS 1.2 suites to serve from an OpenSSL cipher list:
// those Go can serve, in the list's order, or DefaultCipherSuites when the
// list is empty (defaulted true) or names none Go can serve (defaulted
// true too: refusing every TLS 1.2 client would be worse than ignoring
// the list). ignored are the names skipped, for the caller to log.
func Suites(list string) (suites []uint16, ignored []string, defaulted bool) {
	suites, ignored = ParseOpenSSLCiphers(list)
	if len(suites) == 0 {
		return DefaultCipherSuites, ignored, true
	}
	return suites, ignored, false
}

// ServerConfig is the API server's TLS configuration: cert, TLS 1.3 only
// when minVersion is "1.3" (else 1.2 and up), and the TLS 1.2 suites
// (TLS 1.3's are not configurable in Go).
func ServerConfig(cert tls.Certificate, minVersion string, suites []uint16) *tls.Config {
	minV := uint16(tls.VersionTLS12)
	if minVersion == "1.3" {
		minV = tls.VersionTLS13
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV, CipherSuites: suites}
}
