package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
)

// Service is one instance of a service as mDNS announced it.
type Service struct {
	Instance string       // "baremetal._openstack._tcp.local."
	Host     string       // the SRV target, "ironic.local." or a host name
	Port     int          // the SRV port
	Addrs    []netip.Addr // the A/AAAA records, IPv4 first
	TXT      map[string]string
}

// ErrNotFound means no answer named the instance before the timeout.
var ErrNotFound = errors.New("discovery: service not found by mDNS")

type options struct {
	timeout    time.Duration
	interfaces []string
	log        *slog.Logger
}

// Option configures Find.
type Option func(*options)

// WithTimeout bounds how long one query listens for answers (default
// 2 s: responders answer within 20-120 ms, RFC 6762 section 6, so this
// leaves room for a loaded responder without stalling a caller).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithInterfaces names the links queries go out on (default: every link
// that is up, not loopback and multicast-capable).
func WithInterfaces(names ...string) Option { return func(o *options) { o.interfaces = names } }

// WithLogger sets where the mDNS library's own messages go (debug).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Find asks for serviceType (e.g. "_openstack._tcp") in the local domain
// and returns the instance named instance (e.g. "baremetal"). One query
// goes out on each link; the first answer naming the instance wins. It
// returns ErrNotFound if none did within the timeout.
func Find(ctx context.Context, instance, serviceType string, opts ...Option) (*Service, error) {
	o := options{timeout: 2 * time.Second, log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	ifaces, err := queryInterfaces(o.interfaces)
	if err != nil {
		return nil, err
	}
	want := instanceName(instance, serviceType)
	var (
		mu     sync.Mutex
		found  *Service
		errs   []error
		wg     sync.WaitGroup
		logger = log.New(slogWriter{o.log}, "", 0)
	)
	for _, ifi := range ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries, err := query(ctx, serviceType, ifi, o.timeout, logger)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ifaceName(ifi), err))
				return
			}
			for _, e := range entries {
				if found == nil && strings.EqualFold(e.Instance, want) {
					found = e
				}
			}
		}()
	}
	wg.Wait()
	if found != nil {
		return found, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(errs) == len(ifaces) && len(errs) > 0 {
		return nil, fmt.Errorf("discovery: every mDNS query failed: %w", errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, want)
}

// query runs one mDNS query and returns every complete answer. It reads
// the library's entries only after its query returned: the library keeps
// writing an entry as more records about it arrive.
func query(ctx context.Context, serviceType string, ifi *net.Interface, timeout time.Duration, logger *log.Logger) ([]*Service, error) {
	run := func(noIPv6 bool) ([]*mdns.ServiceEntry, error) {
		ch := make(chan *mdns.ServiceEntry, 64) // the library drops what it cannot send at once
		err := mdns.QueryContext(ctx, &mdns.QueryParam{
			Service:   serviceType,
			Domain:    "local",
			Timeout:   timeout,
			Interface: ifi,
			Entries:   ch,
			// Ask for unicast answers: they come back to our own socket
			// whichever link the question left by.
			WantUnicastResponse: true,
			DisableIPv6:         noIPv6,
			Logger:              logger,
		})
		close(ch)
		var out []*mdns.ServiceEntry
		for e := range ch {
			out = append(out, e)
		}
		return out, err
	}
	entries, err := run(false)
	if err != nil && ctx.Err() == nil {
		// A link or a kernel without IPv6 fails the whole query in the
		// library (it sends on both families); IPv4 alone still finds.
		entries, err = run(true)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*Service, 0, len(entries))
	for _, e := range entries {
		out = append(out, fromEntry(e))
	}
	return out, nil
}

func fromEntry(e *mdns.ServiceEntry) *Service {
	s := &Service{Instance: e.Name, Host: e.Host, Port: e.Port, TXT: ParseTXT(e.InfoFields)}
	if a, ok := netip.AddrFromSlice(e.AddrV4); ok && e.AddrV4 != nil {
		s.Addrs = append(s.Addrs, a.Unmap())
	}
	if e.AddrV6IPAddr != nil {
		if a, ok := netip.AddrFromSlice(e.AddrV6IPAddr.IP); ok {
			s.Addrs = append(s.Addrs, a.WithZone(e.AddrV6IPAddr.Zone))
		}
	}
	return s
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
// the local domain, with the trailing dot.
func instanceName(instance, serviceType string) string {
	return strings.TrimSuffix(instance, ".") + "." + strings.Trim(serviceType, ".") + ".local."
}

// queryInterfaces resolves names, or picks every link fit for mDNS. A
// nil entry means "the system's default" (no link fits, e.g. in tests
// with a loopback-only namespace, and the caller named none).
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

// slogWriter sends the library's log.Logger lines to slog at debug: its
// "[ERR] failed to bind udp6" is routine on an IPv4-only ramdisk.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("mdns: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = slogWriter{}
