package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ShutdownWait is how long Serve lets open requests finish once its
// context ends.
const ShutdownWait = 5 * time.Second

// Serve serves srv on ln, with TLS when srv.TLSConfig is set, until ctx
// ends (then it shuts srv down gracefully, waiting at most ShutdownWait,
// and returns nil) or serving fails.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownWait)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	}
}

// Listen binds TCP host:port; "::" falls back to 0.0.0.0 on a machine
// without IPv6.
func Listen(host string, port int) (net.Listener, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil && host == "::" {
		ln, err = net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
