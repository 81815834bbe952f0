// Package download makes the one HTTP client goipa uses for everything
// it fetches or calls: images, config drives, inject_files contents and
// Ironic's own API. TLS (a CA bundle, or no verification, and a client
// certificate), proxies and timeouts are set up here and nowhere else,
// so every download behaves the same way behind the same proxy and CA.
//
// Proxies come from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY,
// as Python's requests reads them for IPA), overridden by the ones
// Ironic passes in image_info (WithProxies). Requests to localhost and
// loopback addresses never go through a proxy.
package download

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// DefaultTimeout is the connect, TLS handshake and stall timeout when
// WithTimeout gives none (IPA's image_download_connection_timeout).
const DefaultTimeout = 60 * time.Second

type options struct {
	caFile            string
	insecure          bool
	certFile, keyFile string
	proxies           map[string]string
	noProxy           string
	timeout           time.Duration
	requestTimeout    time.Duration
}

// Option configures NewClient.
type Option func(*options)

// WithCA verifies servers against the PEM bundle in file ("" keeps the
// system's roots).
func WithCA(file string) Option { return func(o *options) { o.caFile = file } }

// WithInsecure skips verifying the server's certificate when insecure is
// true. Options add up: a later WithInsecure(false) does not undo an
// earlier true (ipa-insecure stays in force when a step's own verify_ca
// is left alone).
func WithInsecure(insecure bool) Option {
	return func(o *options) { o.insecure = o.insecure || insecure }
}

// WithClientCert presents the certificate in certFile (key in keyFile)
// to servers that ask for one. Either empty: none.
func WithClientCert(certFile, keyFile string) Option {
	return func(o *options) { o.certFile, o.keyFile = certFile, keyFile }
}

// WithProxies overrides the environment's proxies: proxies maps "http"
// and "https" to a proxy URL, noProxy is a comma-separated list of hosts
// and domains to reach directly. Empty values keep the environment's.
func WithProxies(proxies map[string]string, noProxy string) Option {
	return func(o *options) { o.proxies, o.noProxy = proxies, noProxy }
}

// WithTimeout bounds connecting, the TLS handshake, waiting for the
// response headers and every read: a server that sends nothing for
// that long fails the request (a download can then resume).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithRequestTimeout bounds each whole request, body included (calls to
// Ironic's API; never a large download).
func WithRequestTimeout(d time.Duration) Option { return func(o *options) { o.requestTimeout = d } }

// NewClient builds an HTTP client from opts.
func NewClient(opts ...Option) (*http.Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	tc, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	timeout := o.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	proxy := o.proxyConfig().ProxyFunc()
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxy(r.URL) },
		TLSClientConfig:       tc,
		ResponseHeaderTimeout: timeout,
		TLSHandshakeTimeout:   timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		// Images are compressed already or must hash as served.
		DisableCompression: true,
	}
	tr.DialContext = (&dialer{timeout: timeout}).DialContext
	return &http.Client{Transport: tr, Timeout: o.requestTimeout}, nil
}

// CAError: the CA bundle cannot be read or holds no certificate.
type CAError struct {
	File string
	Err  error
}

func (e *CAError) Error() string { return fmt.Sprintf("CA bundle %s: %v", e.File, e.Err) }
func (e *CAError) Unwrap() error { return e.Err }

// ClientCertError: the client certificate or its key cannot be loaded.
type ClientCertError struct {
	CertFile, KeyFile string
	Err               error
}

func (e *ClientCertError) Error() string {
	return fmt.Sprintf("client certificate %s (key %s): %v", e.CertFile, e.KeyFile, e.Err)
}
func (e *ClientCertError) Unwrap() error { return e.Err }

func (o *options) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: o.insecure}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, &CAError{File: o.caFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &CAError{File: o.caFile, Err: fmt.Errorf("no PEM certificate in it")}
		}
		tc.RootCAs = pool
	}
	if o.certFile != "" && o.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, &ClientCertError{CertFile: o.certFile, KeyFile: o.keyFile, Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// proxyConfig is the environment's proxies with Ironic's on top.
func (o *options) proxyConfig() *httpproxy.Config {
	pc := httpproxy.FromEnvironment()
	if v := o.proxies["http"]; v != "" {
		pc.HTTPProxy = v
	}
	if v := o.proxies["https"]; v != "" {
		pc.HTTPSProxy = v
	}
	if o.noProxy != "" {
		pc.NoProxy = o.noProxy
	}
	return pc
}
