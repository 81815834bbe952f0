package agent

import (
	"crypto/tls"
	"strings"
)

// defaultCipherSuites are the TLS 1.2 suites the agent serves unless
// told otherwise: the AEAD ECDHE suites IPA allows.
var defaultCipherSuites = []uint16{
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

// parseOpenSSLCiphers turns an OpenSSL cipher list (names separated by
// ':', ',' or spaces) into Go's suite IDs, in the order given. What Go
// cannot serve, or what is not a single suite name (OpenSSL's keywords
// such as HIGH or !aNULL, TLS 1.3 names, which are not configurable in
// Go), comes back in ignored. An empty list means "the defaults".
func parseOpenSSLCiphers(s string) (suites []uint16, ignored []string) {
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

// cipherSuites picks the TLS 1.2 suites the agent serves: lookup's
// tls_cipher_suites when Ironic sends one, else ipa-tls-cipher-suites,
// else the defaults. Names Go cannot serve are logged and skipped; a list
// of nothing Go can serve keeps the defaults (refusing every TLS 1.2
// client would be worse than ignoring the list).
func (a *Agent) cipherSuites() []uint16 {
	spec, from := a.cfg.TLSCipherSuite, "ipa-tls-cipher-suites"
	if s, _ := a.LookupConfig()["tls_cipher_suites"].(string); strings.TrimSpace(s) != "" {
		spec, from = s, "lookup tls_cipher_suites"
	}
	if strings.TrimSpace(spec) == "" {
		return defaultCipherSuites
	}
	suites, ignored := parseOpenSSLCiphers(spec)
	if len(ignored) > 0 {
		a.log.Warn("TLS cipher names this agent cannot serve are ignored", "from", from, "ignored", ignored)
	}
	if len(suites) == 0 {
		a.log.Warn("no cipher this agent can serve in the list: keeping the default TLS 1.2 suites", "from", from, "list", spec)
		return defaultCipherSuites
	}
	names := make([]string, len(suites))
	for i, id := range suites {
		names[i] = tls.CipherSuiteName(id)
	}
	a.log.Info("TLS 1.2 cipher suites restricted", "from", from, "suites", names)
	return suites
}
