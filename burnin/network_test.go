package burnin

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestNetworkPairOnLoopback(t *testing.T) {
	// Two nodes on loopback, each listening on its own port while it
	// writes and naming the other's port as its partner.
	pa, pb := freePort(t), freePort(t)
	base := NetworkOptions{Runtime: 500 * time.Millisecond, Streams: 4, PartnerTimeout: 10 * time.Second, StallTimeout: 5 * time.Second}
	a, b := base, base
	a.Role, a.Listen, a.Partner = Writer, "127.0.0.1:"+pa, "127.0.0.1:"+pb
	b.Role, b.Listen, b.Partner = Reader, "127.0.0.1:"+pb, "127.0.0.1:"+pa

	var wg sync.WaitGroup
	var ra, rb []NetworkResult
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); ra, ea = Network(context.Background(), a) }()
	go func() { defer wg.Done(); rb, eb = Network(context.Background(), b) }()
	wg.Wait()
	require.NoError(t, ea)
	require.NoError(t, eb)
	require.Len(t, ra, 2)
	require.Len(t, rb, 2)
	assert.Equal(t, []NetworkRole{Writer, Reader}, []NetworkRole{ra[0].Role, ra[1].Role}, "the roles swap")
	assert.Equal(t, []NetworkRole{Reader, Writer}, []NetworkRole{rb[0].Role, rb[1].Role})
	for dir, pair := range [][2]NetworkResult{{ra[0], rb[0]}, {rb[1], ra[1]}} {
		w, r := pair[0], pair[1]
		assert.Equal(t, 4, w.Streams, "direction %d", dir)
		assert.Equal(t, 4, r.Streams, "direction %d", dir)
		assert.Greater(t, r.Bytes, int64(0), "direction %d", dir)
		assert.Equal(t, w.Bytes, r.Bytes, "direction %d: every byte written is read and checked", dir)
		assert.Greater(t, r.MbitPerSecond, 0.0, "direction %d", dir)
		assert.GreaterOrEqual(t, w.Seconds, 0.5, "direction %d: the writer writes for the runtime", dir)
		assert.Less(t, w.Seconds, 5.0, "direction %d: and then stops", dir)
		assert.Empty(t, w.Errors)
		assert.Empty(t, r.Errors)
	}
}

func TestNetworkPartnerNeverAnswers(t *testing.T) {
	o := NetworkOptions{Runtime: time.Hour, Streams: 2, PartnerTimeout: 1500 * time.Millisecond, StallTimeout: time.Second}

	// A reader whose writer never listens: refused until the bound.
	r := o
	r.Role, r.Partner, r.Listen = Reader, "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	start := time.Now()
	_, err := Network(context.Background(), r)
	assert.Less(t, time.Since(start), 5*time.Second)
	var ne *NetworkError
	require.True(t, errors.As(err, &ne), "%v", err)
	assert.Equal(t, Reader, ne.Role)
	assert.ErrorContains(t, err, "no writer answered at "+r.Partner+" within 1.5s")
	assert.ErrorContains(t, err, "connection refused")

	// A writer that no reader ever connects to.
	w := o
	w.Role, w.Partner, w.Listen = Writer, "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	start = time.Now()
	_, err = Network(context.Background(), w)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.ErrorContains(t, err, "no reader connected to "+w.Listen+" within 1.5s")

	// Something that accepts but is not a writer (and never speaks).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r.Partner = l.Addr().String()
	start = time.Now()
	_, err = Network(context.Background(), r)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.ErrorContains(t, err, "did not answer as a goipa network burn-in writer")
}

func TestNetworkAbort(t *testing.T) {
	// A writer waiting an hour for its reader stops when the step is aborted.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := Network(ctx, NetworkOptions{Role: Writer, Partner: "127.0.0.1", Listen: "127.0.0.1:" + freePort(t), Runtime: time.Hour, PartnerTimeout: time.Hour})
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)

	// And in the middle of a transfer, both sides stop.
	pa, pb := freePort(t), freePort(t)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, o := range []NetworkOptions{
		{Role: Writer, Listen: "127.0.0.1:" + pa, Partner: "127.0.0.1:" + pb},
		{Role: Reader, Listen: "127.0.0.1:" + pb, Partner: "127.0.0.1:" + pa},
	} {
		o.Runtime, o.Streams = time.Hour, 2
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = Network(ctx, o) }()
	}
	time.AfterFunc(500*time.Millisecond, cancel)
	start = time.Now()
	wg.Wait()
	assert.Less(t, time.Since(start), 3*time.Second)
	for _, err := range errs {
		assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	}
}

func TestNetworkOptions(t *testing.T) {
	for _, c := range []struct {
		in   NetworkOptions
		want string // the partner's address, or the error
	}{
		{NetworkOptions{Role: Reader, Partner: "node-2", Runtime: 1}, "node-2:9000"},
		{NetworkOptions{Role: Reader, Partner: "10.0.0.2", Listen: ":9100", Runtime: 1}, "10.0.0.2:9100"},
		{NetworkOptions{Role: Reader, Partner: "10.0.0.2:7000", Runtime: 1}, "10.0.0.2:7000"},
		{NetworkOptions{Role: Writer, Partner: "fd00::2", Runtime: 1}, "[fd00::2]:9000"},
		{NetworkOptions{Role: Writer, Partner: "[fd00::2]", Runtime: 1}, "[fd00::2]:9000"},
		{NetworkOptions{Role: "talker", Partner: "x", Runtime: 1}, `unknown role "talker"`},
		{NetworkOptions{Role: Writer, Runtime: 1}, "no partner"},
		{NetworkOptions{Role: Writer, Partner: "x"}, "runtime 0s is not positive"},
	} {
		o, err := c.in.withDefaults()
		if err != nil {
			assert.ErrorContains(t, err, c.want)
			continue
		}
		assert.Equal(t, c.want, o.Partner)
		assert.Equal(t, DefaultNetworkStreams, o.Streams)
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{session: 42, stream: 3, streams: 16}
	got, ok := parseHello(h.marshal())
	assert.True(t, ok)
	assert.Equal(t, h, got)
	for _, bad := range []hello{{1, 16, 16}, {1, 0, 0}, {1, 0, 5000}} {
		_, ok := parseHello(bad.marshal())
		assert.False(t, ok, "%+v", bad)
	}
	_, ok = parseHello([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	assert.False(t, ok)
}

func FuzzParseHello(f *testing.F) {
	f.Add(hello{7, 1, 2}.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, ok := parseHello(b); ok && h.stream >= h.streams {
			t.Fatalf("%+v accepted", h)
		}
	})
}
