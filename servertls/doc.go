// Package servertls makes the TLS side of an agent's API server: the
// self-signed certificate ironic-python-agent makes for auto-TLS (an EC
// key, a critical subjectAltName naming the advertised address, 30 days,
// an hour of clock skew allowed) and the server's tls.Config, with the
// TLS 1.2 cipher suites chosen from an OpenSSL cipher list, since IPA's
// operators write OpenSSL names.
package servertls
