package burnin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The network burn-in (burnin_network) pairs two nodes as IPA's
// fio_network does: the writer listens (fio's --listen, port 9000) and
// streams for the runtime on 16 connections (fio's --numjobs 16), the
// reader connects to its partner and reads until the writer is done; then
// the roles swap. fio's net engine sends unchecked bytes; here every block
// carries its stream and sequence number and a pattern the reader checks,
// so a lost, repeated or corrupted block is an error, not a slow run.

// NetworkRole is a node's part in one direction of the network burn-in.
type NetworkRole string

// The two roles of IPA's NETWORK_BURNIN_ROLES.
const (
	Writer NetworkRole = "writer"
	Reader NetworkRole = "reader"
)

// Defaults of the network burn-in, IPA's where IPA has one.
const (
	DefaultNetworkPort           = 9000              // fio's --port
	DefaultNetworkStreams        = 16                // fio's --numjobs
	DefaultNetworkPartnerTimeout = 900 * time.Second // agent_burnin_fio_network_pairing_timeout
	DefaultNetworkStallTimeout   = 30 * time.Second  // IPA's NETWORK_READER_CYCLE
)

const (
	netBlock  = 128 << 10 // bytes per block on the wire
	netHeader = 16        // sequence number, stream number
	netHello  = 24        // magic, session, stream, streams
	netEnd    = ^uint64(0)
	// A reader retries a refused connection this often (IPA's reader
	// waits 30 s between fio runs; the partner's wait is what bounds it).
	netRetry = time.Second
)

var netMagic = [8]byte{'G', 'O', 'I', 'P', 'A', 'N', 'B', '1'}

// NetworkOptions configure Network.
type NetworkOptions struct {
	// Role is this node's role in the first direction; the second
	// direction swaps it.
	Role NetworkRole
	// Partner is the other node: a host name or address, with an
	// optional port (default: the port of Listen, else 9000).
	Partner string
	// Listen is where this node listens while it is the writer
	// (default ":9000", every address, as fio's --listen).
	Listen string
	// Runtime is how long each writer writes (agent_burnin_fio_network_runtime).
	Runtime time.Duration
	// Streams is the number of parallel connections (default 16).
	Streams int
	// PartnerTimeout bounds how long each direction waits for the
	// partner to connect or to listen (default 900 s).
	PartnerTimeout time.Duration
	// StallTimeout fails a connection that moves no data for this long
	// (default 30 s).
	StallTimeout time.Duration
}

// NetworkResult is one direction of the network burn-in as this node saw it.
type NetworkResult struct {
	Role           NetworkRole `json:"role"`
	Partner        string      `json:"partner"`
	Streams        int         `json:"streams"`
	Bytes          int64       `json:"bytes"`
	Seconds        float64     `json:"seconds"`
	BytesPerSecond float64     `json:"bytes_per_second"`
	MbitPerSecond  float64     `json:"mbit_per_second"`
	// Errors are the streams that failed: refused, broken, stalled, or
	// (reader) blocks that arrived out of order or corrupted.
	Errors []string `json:"errors"`
}

func (r *NetworkResult) finish(start time.Time, bytes int64) {
	r.Bytes = bytes
	r.Seconds = time.Since(start).Seconds()
	r.BytesPerSecond = float64(bytes) / max(r.Seconds, 1e-9)
	r.MbitPerSecond = r.BytesPerSecond * 8 / 1e6
}

// NetworkError is a failed direction of the network burn-in.
type NetworkError struct {
	Role    NetworkRole
	Partner string
	Err     error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("network burn-in as %s with partner %s: %v", e.Role, e.Partner, e.Err)
}

func (e *NetworkError) Unwrap() error { return e.Err }

func (o NetworkOptions) withDefaults() (NetworkOptions, error) {
	if o.Role != Writer && o.Role != Reader {
		return o, fmt.Errorf("network burn-in: unknown role %q (writer or reader)", o.Role)
	}
	if strings.TrimSpace(o.Partner) == "" {
		return o, errors.New("network burn-in: no partner")
	}
	if o.Listen == "" {
		o.Listen = ":" + strconv.Itoa(DefaultNetworkPort)
	}
	port := strconv.Itoa(DefaultNetworkPort)
	if _, p, err := net.SplitHostPort(o.Listen); err == nil && p != "" && p != "0" {
		port = p
	}
	if _, _, err := net.SplitHostPort(o.Partner); err != nil {
		// A bare host, or a bare IPv6 address (maybe in brackets).
		o.Partner = net.JoinHostPort(strings.Trim(o.Partner, "[]"), port)
	}
	if o.Streams <= 0 {
		o.Streams = DefaultNetworkStreams
	}
	if o.PartnerTimeout <= 0 {
		o.PartnerTimeout = DefaultNetworkPartnerTimeout
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultNetworkStallTimeout
	}
	if o.Runtime <= 0 {
		return o, fmt.Errorf("network burn-in: runtime %v is not positive", o.Runtime)
	}
	return o, nil
}

// Network runs both directions of the network burn-in with one partner:
// first in o.Role, then in the other role, as IPA does. It returns what
// each direction measured, and an error (a *NetworkError) when a
// direction could not start, or any stream failed or carried bad data.
// It stops when ctx is cancelled.
func Network(ctx context.Context, o NetworkOptions) ([]NetworkResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	var results []NetworkResult
	for _, role := range []NetworkRole{o.Role, other(o.Role)} {
		var r NetworkResult
		var err error
		if role == Writer {
			r, err = netWrite(ctx, o)
		} else {
			r, err = netRead(ctx, o)
		}
		if err == nil && len(r.Errors) > 0 {
			err = errors.New(strings.Join(r.Errors, "; "))
		}
		results = append(results, r)
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return results, &NetworkError{Role: role, Partner: o.Partner, Err: err}
		}
	}
	return results, nil
}

func other(r NetworkRole) NetworkRole {
	if r == Writer {
		return Reader
	}
	return Writer
}

// pattern is what every block after its header carries in a session.
func pattern(session uint64) []byte {
	b := make([]byte, netBlock)
	fillPage(b, session)
	return b
}

type hello struct {
	session         uint64
	stream, streams uint32
}

func (h hello) marshal() []byte {
	b := make([]byte, netHello)
	copy(b, netMagic[:])
	binary.LittleEndian.PutUint64(b[8:], h.session)
	binary.LittleEndian.PutUint32(b[16:], h.stream)
	binary.LittleEndian.PutUint32(b[20:], h.streams)
	return b
}

func parseHello(b []byte) (hello, bool) {
	if len(b) != netHello || !bytes.Equal(b[:8], netMagic[:]) {
		return hello{}, false
	}
	h := hello{binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint32(b[16:]), binary.LittleEndian.Uint32(b[20:])}
	return h, h.streams > 0 && h.streams <= 1024 && h.stream < h.streams
}

// closeOnDone makes every blocked read, write, accept or dial on c
// return when ctx ends.
func closeOnDone(ctx context.Context, c io.Closer) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}

// netWrite listens, accepts the reader's streams and writes to each
// until the runtime has passed since the first one arrived.
func netWrite(ctx context.Context, o NetworkOptions) (NetworkResult, error) {
	r := NetworkResult{Role: Writer, Partner: o.Partner, Errors: []string{}}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return r, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	ln := l.(*net.TCPListener)
	defer ln.Close()
	defer closeOnDone(ctx, ln)()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		sent     atomic.Int64
		start    time.Time
		deadline time.Time
		session  uint64
		want     = 0
		accepted = 0
		pat      []byte
	)
	fail := func(format string, a ...any) {
		mu.Lock()
		r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	ln.SetDeadline(time.Now().Add(o.PartnerTimeout))
	for want == 0 || accepted < want {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				wg.Wait()
				return r, context.Cause(ctx)
			}
			if want == 0 {
				return r, fmt.Errorf("no reader connected to %s within %v: %w", o.Listen, o.PartnerTimeout, err)
			}
			fail("only %d of %d streams connected: %v", accepted, want, err)
			break
		}
		c.SetDeadline(time.Now().Add(o.StallTimeout))
		b := make([]byte, netHello)
		h, ok := hello{}, false
		stop := closeOnDone(ctx, c)
		if _, err := io.ReadFull(c, b); err == nil {
			h, ok = parseHello(b)
		}
		stop()
		if !ok || (want != 0 && (h.session != session || int(h.streams) != want)) {
			// Not our partner's burn-in (or a stray connection): not counted.
			c.Close()
			continue
		}
		if _, err := c.Write(b); err != nil {
			c.Close()
			continue
		}
		if want == 0 {
			session, want, pat = h.session, int(h.streams), pattern(h.session)
			start = time.Now()
			deadline = start.Add(o.Runtime)
			// The rest were dialled at once: they come within a stall.
			ln.SetDeadline(time.Now().Add(o.StallTimeout))
		}
		accepted++
		wg.Add(1)
		go func(c net.Conn, stream uint32) {
			defer wg.Done()
			defer c.Close()
			defer closeOnDone(ctx, c)()
			if err := writeStream(c, stream, pat, deadline, o.StallTimeout, &sent); err != nil {
				if ctx.Err() == nil {
					fail("stream %d: %v", stream, err)
				}
			}
		}(c, h.stream)
	}
	ln.Close()
	wg.Wait()
	r.Streams = accepted
	r.finish(start, sent.Load())
	if ctx.Err() != nil {
		return r, context.Cause(ctx)
	}
	return r, nil
}

func writeStream(c net.Conn, stream uint32, pat []byte, deadline time.Time, stall time.Duration, sent *atomic.Int64) error {
	b := bytes.Clone(pat)
	binary.LittleEndian.PutUint64(b[8:], uint64(stream))
	var seq uint64
	for ; time.Now().Before(deadline); seq++ {
		binary.LittleEndian.PutUint64(b, seq)
		c.SetWriteDeadline(time.Now().Add(stall))
		if _, err := c.Write(b); err != nil {
			return fmt.Errorf("after %d bytes: %w", seq*netBlock, err)
		}
		sent.Add(netBlock)
	}
	// The end block tells the reader the stream is complete and how long.
	binary.LittleEndian.PutUint64(b, netEnd)
	binary.LittleEndian.PutUint64(b[8:], seq)
	c.SetWriteDeadline(time.Now().Add(stall))
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("end of stream: %w", err)
	}
	return nil
}

// netRead connects to the partner (retrying while it does not listen
// yet) and reads and checks every stream to its end.
func netRead(ctx context.Context, o NetworkOptions) (NetworkResult, error) {
	r := NetworkResult{Role: Reader, Partner: o.Partner, Streams: o.Streams, Errors: []string{}}
	var sb [8]byte
	rand.Read(sb[:])
	session := binary.LittleEndian.Uint64(sb[:])
	pat := pattern(session)

	// The first stream waits for the partner, the others follow at once.
	first, err := dialWriter(ctx, o, hello{session, 0, uint32(o.Streams)}, time.Now().Add(o.PartnerTimeout))
	if err != nil {
		return r, err
	}
	conns := make([]net.Conn, o.Streams)
	conns[0] = first
	var wg sync.WaitGroup
	var mu sync.Mutex
	fail := func(format string, a ...any) {
		mu.Lock()
		r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	for i := 1; i < o.Streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dialWriter(ctx, o, hello{session, uint32(i), uint32(o.Streams)}, time.Now().Add(o.StallTimeout))
			if err != nil {
				if ctx.Err() == nil {
					fail("stream %d: %v", i, err)
				}
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	r.Streams = 0
	start := time.Now()
	var got atomic.Int64
	for i, c := range conns {
		if c == nil {
			continue
		}
		r.Streams++
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			defer c.Close()
			defer closeOnDone(ctx, c)()
			if err := readStream(c, uint32(i), pat, o.StallTimeout, &got); err != nil && ctx.Err() == nil {
				fail("stream %d: %v", i, err)
			}
		}(i, c)
	}
	wg.Wait()
	r.finish(start, got.Load())
	if ctx.Err() != nil {
		return r, context.Cause(ctx)
	}
	return r, nil
}

// dialWriter connects one stream and exchanges the hello, retrying a
// partner that refuses until by.
func dialWriter(ctx context.Context, o NetworkOptions, h hello, by time.Time) (net.Conn, error) {
	var last error
	for {
		left := time.Until(by)
		if left <= 0 {
			return nil, fmt.Errorf("no writer answered at %s within %v: %w", o.Partner, o.PartnerTimeout, last)
		}
		d := net.Dialer{Timeout: min(left, o.StallTimeout)}
		c, err := d.DialContext(ctx, "tcp", o.Partner)
		if err == nil {
			err = handshake(ctx, c, h, min(left, o.StallTimeout))
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		last = err
		t := time.NewTimer(min(netRetry, max(time.Until(by), 0)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		case <-t.C:
		}
	}
}

func handshake(ctx context.Context, c net.Conn, h hello, timeout time.Duration) error {
	defer closeOnDone(ctx, c)()
	c.SetDeadline(time.Now().Add(timeout))
	b := h.marshal()
	if _, err := c.Write(b); err != nil {
		return err
	}
	ack := make([]byte, netHello)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("%s accepted but did not answer as a goipa network burn-in writer: %w", c.RemoteAddr(), err)
	}
	if !bytes.Equal(ack, b) {
		return fmt.Errorf("%s is not a goipa network burn-in writer", c.RemoteAddr())
	}
	c.SetDeadline(time.Time{})
	return nil
}

func readStream(c net.Conn, stream uint32, pat []byte, stall time.Duration, got *atomic.Int64) error {
	b := make([]byte, netBlock)
	for seq := uint64(0); ; seq++ {
		c.SetReadDeadline(time.Now().Add(stall))
		if _, err := io.ReadFull(c, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("the writer closed the stream without its end after %d bytes", seq*netBlock)
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no data for %v after %d bytes", stall, seq*netBlock)
			}
			return fmt.Errorf("after %d bytes: %w", seq*netBlock, err)
		}
		n := binary.LittleEndian.Uint64(b)
		if n == netEnd {
			if sent := binary.LittleEndian.Uint64(b[8:]); sent != seq {
				return fmt.Errorf("the writer sent %d blocks, %d arrived", sent, seq)
			}
			return nil
		}
		if n != seq || binary.LittleEndian.Uint64(b[8:]) != uint64(stream) {
			return fmt.Errorf("block %d arrived as block %d of stream %d: lost or misdelivered data", seq, n, binary.LittleEndian.Uint64(b[8:]))
		}
		if !bytes.Equal(b[netHeader:], pat[netHeader:]) {
			return fmt.Errorf("block %d arrived corrupted", seq)
		}
		got.Add(netBlock)
	}
}
