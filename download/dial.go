package download

import (
	"context"
	"net"
	"time"
)

// dialer connects with a timeout and makes every read on the connection
// fail once the server has sent nothing for that long: a stalled
// download errors out (and resumes) instead of hanging forever.
type dialer struct{ timeout time.Duration }

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, timeout: d.timeout}, nil
}

type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}
