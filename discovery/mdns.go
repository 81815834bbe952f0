package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// Service is one instance of a service as mDNS announced it.
type Service struct {
	Instance string       // "baremetal._openstack._tcp.local."
	Host     string       // the SRV target, "ironic.local." or a host name
	Port     int          // the SRV port
	Addrs    []netip.Addr // the A/AAAA records of Host, IPv4 first
	TXT      map[string]string
}

// ErrNotFound means no answer named the instance before the timeout.
var ErrNotFound = errors.New("discovery: service not found by mDNS")

var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

type options struct {
	timeout    time.Duration
	interfaces []string
	log        *slog.Logger
}

// Option configures Find.
type Option func(*options)

// WithTimeout bounds how long Find listens for answers (default 3 s:
// responders answer within 20-120 ms, RFC 6762 section 6, and the
// question is asked three times in that time).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithInterfaces names the links questions go out on (default: every
// link that is up, not loopback and multicast-capable).
func WithInterfaces(names ...string) Option { return func(o *options) { o.interfaces = names } }

// WithLogger sets where skipped answers are logged (debug).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Find asks for instance (e.g. "baremetal") of serviceType (e.g.
// "_openstack._tcp") in the local domain, on each link at once, and
// returns the first complete answer: SRV, TXT and, for a ".local." host,
// its addresses. It returns ErrNotFound if none came within the timeout.
//
// The question goes out from an ephemeral port, so responders answer
// by unicast straight to it (RFC 6762 section 6.7, "legacy unicast"):
// no socket on port 5353 is needed, and nothing is shared with a
// responder on the same machine.
func Find(ctx context.Context, instance, serviceType string, opts ...Option) (*Service, error) {
	o := options{timeout: 3 * time.Second, log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	ifaces, err := queryInterfaces(o.interfaces)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	want := instanceName(instance, serviceType)
	var (
		mu    sync.Mutex
		found *Service
		errs  []error
		wg    sync.WaitGroup
	)
	for _, ifi := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := ask(ctx, want, ifi, o.log)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case s != nil && found == nil:
				found = s
				cancel() // the other links need not go on
			case err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
				errs = append(errs, fmt.Errorf("%s: %w", ifaceName(ifi), err))
			}
		}()
	}
	wg.Wait()
	if found != nil {
		return found, nil
	}
	if len(errs) == len(ifaces) && len(errs) > 0 {
		return nil, fmt.Errorf("discovery: every mDNS query failed: %w", errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, want)
}

// ask puts the question on one link until the answer is complete or ctx
// ends, asking again at 0.25 s and 1 s as RFC 6762 section 5.2 spaces
// repeated questions.
func ask(ctx context.Context, want string, ifi *net.Interface, log *slog.Logger) (*Service, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if ifi != nil {
		pc := ipv4.NewPacketConn(conn)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return nil, fmt.Errorf("multicast interface: %w", err)
		}
		pc.SetMulticastTTL(255) // RFC 6762 section 11
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	acc := newAnswers()
	send := func() error {
		q, err := question(want, acc.host())
		if err != nil {
			return err
		}
		_, err = conn.WriteToUDP(q, mdnsGroup)
		return err
	}
	if err := send(); err != nil {
		return nil, fmt.Errorf("sending the question: %w", err)
	}
	resend := []time.Duration{250 * time.Millisecond, time.Second}
	next := time.Now().Add(resend[0])
	buf := make([]byte, 9000)
	for {
		conn.SetReadDeadline(next)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if len(resend) > 1 {
					resend = resend[1:]
				}
				next = time.Now().Add(resend[0])
				if err := send(); err != nil {
					return nil, fmt.Errorf("sending the question: %w", err)
				}
				continue
			}
			return nil, err
		}
		recs, err := ParseResponse(buf[:n])
		if err != nil {
			log.Debug("mdns: skipping an answer that does not parse", "from", from.String(), "error", err)
		}
		acc.add(recs)
		if s := acc.service(want); s != nil {
			return s, nil
		}
	}
}

// question asks for the instance's SRV and TXT records (and, once the
// SRV named its host, the host's address), as zeroconf's
// get_service_info does, asking for a unicast answer (the QU bit).
func question(instance, host string) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	ask := func(name string, t dnsmessage.Type) error {
		n, err := dnsmessage.NewName(name)
		if err != nil {
			return err
		}
		return b.Question(dnsmessage.Question{Name: n, Type: t, Class: dnsmessage.ClassINET | 1<<15})
	}
	for _, t := range []dnsmessage.Type{dnsmessage.TypeSRV, dnsmessage.TypeTXT} {
		if err := ask(instance, t); err != nil {
			return nil, err
		}
	}
	if host != "" {
		if err := ask(host, dnsmessage.TypeA); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// Record is one resource record of an answer that Find uses.
type Record struct {
	Name   string // lower case, with the trailing dot
	Type   dnsmessage.Type
	Target string // SRV
	Port   int    // SRV
	TXT    []string
	Addr   netip.Addr // A, AAAA
}

// ParseResponse reads the records Find needs (SRV, TXT, A, AAAA) from
// every section of a DNS message; records of other types (NSEC, PTR,
// ...) are skipped, whatever their content. Parsing stops at the first
// malformed record, keeping those before it.
func ParseResponse(msg []byte) ([]Record, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	if !h.Response {
		return nil, nil // another querier's question
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, err
	}
	var out []Record
	for section := 0; section < 3; section++ {
		for {
			var rh dnsmessage.ResourceHeader
			switch section {
			case 0:
				rh, err = p.AnswerHeader()
			case 1:
				rh, err = p.AuthorityHeader()
			default:
				rh, err = p.AdditionalHeader()
			}
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				break
			}
			if err != nil {
				return out, err
			}
			r := Record{Name: strings.ToLower(rh.Name.String()), Type: rh.Type}
			switch rh.Type {
			case dnsmessage.TypeSRV:
				srv, err := p.SRVResource()
				if err != nil {
					return out, err
				}
				r.Target, r.Port = strings.ToLower(srv.Target.String()), int(srv.Port)
			case dnsmessage.TypeTXT:
				txt, err := p.TXTResource()
				if err != nil {
					return out, err
				}
				r.TXT = txt.TXT
			case dnsmessage.TypeA:
				a, err := p.AResource()
				if err != nil {
					return out, err
				}
				r.Addr = netip.AddrFrom4(a.A)
			case dnsmessage.TypeAAAA:
				a, err := p.AAAAResource()
				if err != nil {
					return out, err
				}
				r.Addr = netip.AddrFrom16(a.AAAA)
			default:
				if err := skipResource(&p, section); err != nil {
					return out, err
				}
				continue
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func skipResource(p *dnsmessage.Parser, section int) error {
	switch section {
	case 0:
		return p.SkipAnswer()
	case 1:
		return p.SkipAuthority()
	default:
		return p.SkipAdditional()
	}
}

// answers gathers records across the answers to one question.
type answers struct {
	srv   map[string]Record
	txt   map[string][]string
	addrs map[string][]netip.Addr
}

func newAnswers() *answers {
	return &answers{srv: map[string]Record{}, txt: map[string][]string{}, addrs: map[string][]netip.Addr{}}
}

func (a *answers) add(recs []Record) {
	for _, r := range recs {
		switch r.Type {
		case dnsmessage.TypeSRV:
			a.srv[r.Name] = r
		case dnsmessage.TypeTXT:
			a.txt[r.Name] = r.TXT
		case dnsmessage.TypeA, dnsmessage.TypeAAAA:
			have := a.addrs[r.Name]
			dup := false
			for _, x := range have {
				dup = dup || x == r.Addr
			}
			if !dup {
				a.addrs[r.Name] = append(have, r.Addr)
			}
		}
	}
}

// host is the SRV target once known ("" before).
func (a *answers) host() string {
	for _, r := range a.srv {
		return r.Target
	}
	return ""
}

// service is the instance once SRV, TXT and (for a .local. host) an
// address are in; nil before.
func (a *answers) service(want string) *Service {
	want = strings.ToLower(want)
	srv, ok := a.srv[want]
	if !ok {
		return nil
	}
	txt, ok := a.txt[want]
	if !ok {
		return nil
	}
	addrs := append([]netip.Addr(nil), a.addrs[srv.Target]...)
	if len(addrs) == 0 && strings.HasSuffix(srv.Target, ".local.") {
		return nil
	}
	// IPv4 first, as callers prefer it.
	var v4, v6 []netip.Addr
	for _, x := range addrs {
		if x.Is4() {
			v4 = append(v4, x)
		} else {
			v6 = append(v6, x)
		}
	}
	return &Service{Instance: want, Host: srv.Target, Port: srv.Port, Addrs: append(v4, v6...), TXT: ParseTXT(txt)}
}

// ParseTXT turns TXT strings into key/value pairs as RFC 6763 section
// 6.3-6.4 reads them: the key is up to the first "=", case-insensitive
// (kept as sent), a string without "=" is a key with no value, an empty
// key is ignored, and the first occurrence of a key wins.
func ParseTXT(fields []string) map[string]string {
	out := map[string]string{}
	seen := map[string]bool{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		if k == "" || seen[strings.ToLower(k)] {
			continue
		}
		seen[strings.ToLower(k)] = true
		out[k] = v
	}
	return out
}

// instanceName is the full DNS-SD name of an instance of serviceType in
// the local domain, lower case, with the trailing dot.
func instanceName(instance, serviceType string) string {
	return strings.ToLower(strings.TrimSuffix(instance, ".") + "." + strings.Trim(serviceType, ".") + ".local.")
}

// queryInterfaces resolves names, or picks every link fit for mDNS. A
// nil entry means "the system's default" (no link fits and the caller
// named none).
func queryInterfaces(names []string) ([]*net.Interface, error) {
	if len(names) > 0 {
		var out []*net.Interface
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("discovery: %w", err)
			}
			out = append(out, ifi)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: listing links: %w", err)
	}
	var out []*net.Interface
	for i := range all {
		f := all[i].Flags
		if f&net.FlagUp != 0 && f&net.FlagLoopback == 0 && f&net.FlagMulticast != 0 {
			out = append(out, &all[i])
		}
	}
	if len(out) == 0 {
		out = []*net.Interface{nil}
	}
	return out, nil
}

func ifaceName(ifi *net.Interface) string {
	if ifi == nil {
		return "default link"
	}
	return ifi.Name
}
