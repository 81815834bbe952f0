package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/goipa/goipa/httpserve"
	"github.com/goipa/goipa/servertls"
)

// prepareCallback settles the callback URL and, with auto-TLS, the
// certificate; both stay fixed for the agent's life (spec 12.8).
func (a *Agent) prepareCallback(ctx context.Context) (*tls.Config, error) {
	host, err := a.advertiseHost(ctx)
	if err != nil {
		return nil, err
	}
	proto := a.cfg.AdvertiseProtocol
	var tlsCfg *tls.Config
	a.mu.Lock()
	v := a.apiVersion
	a.mu.Unlock()
	switch {
	case a.cfg.ListenTLS:
		cert, err := tls.LoadX509KeyPair(a.cfg.CertFile, a.cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ipa-listen-tls: %w", err)
		}
		tlsCfg = a.serverTLS(cert)
	case a.cfg.EnableAutoTLS && v.AtLeast("1.68"):
		cert, pem, err := servertls.SelfSigned(host, a.cfg.TLSCurve, time.Now())
		if err != nil {
			return nil, fmt.Errorf("auto-TLS: %w", err)
		}
		tlsCfg = a.serverTLS(cert)
		proto = "https"
		a.mu.Lock()
		a.verifyCA = pem
		a.mu.Unlock()
		a.log.Info("auto-TLS: serving HTTPS with a generated certificate", "host", host)
	}
	hp := net.JoinHostPort(host, strconv.Itoa(a.cfg.AdvertisePort))
	a.mu.Lock()
	a.callbackURL = proto + "://" + hp
	a.mu.Unlock()
	a.log.Info("callback URL", "url", proto+"://"+hp)
	return tlsCfg, nil
}

// serverTLS is the API's TLS: lookup's tls_min_version "1.3" raises
// ipa-tls-min-version, and the TLS 1.2 suites are IPA's AEAD ECDHE ones
// unless the operator or Ironic restricts them.
func (a *Agent) serverTLS(cert tls.Certificate) *tls.Config {
	minV := a.cfg.TLSMinVersion
	if s, _ := a.LookupConfig()["tls_min_version"].(string); s == "1.3" {
		minV = s
	}
	return servertls.ServerConfig(cert, minV, a.cipherSuites())
}

// cipherSuites picks the TLS 1.2 suites the agent serves: lookup's
// tls_cipher_suites when Ironic sends one, else ipa-tls-cipher-suites,
// else the defaults. Names Go cannot serve are logged and skipped; a list
// of nothing Go can serve keeps the defaults.
func (a *Agent) cipherSuites() []uint16 {
	spec, from := a.cfg.TLSCipherSuite, "ipa-tls-cipher-suites"
	if s, _ := a.LookupConfig()["tls_cipher_suites"].(string); strings.TrimSpace(s) != "" {
		spec, from = s, "lookup tls_cipher_suites"
	}
	if strings.TrimSpace(spec) == "" {
		return servertls.DefaultCipherSuites
	}
	suites, ignored, defaulted := servertls.Suites(spec)
	if len(ignored) > 0 {
		a.log.Warn("TLS cipher names this agent cannot serve are ignored", "from", from, "ignored", ignored)
	}
	if defaulted {
		a.log.Warn("no cipher this agent can serve in the list: keeping the default TLS 1.2 suites", "from", from, "list", spec)
		return suites
	}
	names := make([]string, len(suites))
	for i, id := range suites {
		names[i] = tls.CipherSuiteName(id)
	}
	a.log.Info("TLS 1.2 cipher suites restricted", "from", from, "suites", names)
	return suites
}

// serve runs the API until ctx ends or a lockdown stops it.
func (a *Agent) serve(ctx context.Context, tlsCfg *tls.Config) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	a.mu.Lock()
	a.serverStop = stop
	a.mu.Unlock()
	ln := a.listener
	if ln == nil {
		var err error
		ln, err = httpserve.Listen(a.cfg.ListenHost, a.cfg.ListenPort)
		if err != nil {
			return fmt.Errorf("API: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig:         tlsCfg,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	a.log.Info("API listening", "address", ln.Addr().String(), "tls", tlsCfg != nil)
	return httpserve.Serve(sctx, srv, ln)
}
