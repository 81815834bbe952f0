package netcfg

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// LinkState is what the inspection waits read of a link. The kernel
// answers on Linux (sysfs and netlink); tests give fake links.
type LinkState interface {
	// Carrier reports whether the link has carrier (a cable and a peer).
	Carrier(name string) bool
	// HasIPv4 reports whether the link has an IPv4 address, as IPA's
	// wait_for_dhcp checks (it looks at IPv4 only).
	HasIPv4(name string) bool
}

type waitOptions struct {
	carrierOnly bool
	state       LinkState
	poll        time.Duration
	log         *slog.Logger
}

// WaitOption configures WaitForAddresses and CollectLLDP.
type WaitOption func(*waitOptions)

// WithLinkState replaces the kernel's view of the links (tests).
func WithLinkState(s LinkState) WaitOption { return func(o *waitOptions) { o.state = s } }

// WithPollInterval sets how often link state is read again (default
// 250 ms: a sysfs read is cheap, and a fast answer shortens inspection).
func WithPollInterval(d time.Duration) WaitOption { return func(o *waitOptions) { o.poll = d } }

// WithWaitLogger sets the logger for progress and skipped frames.
func WithWaitLogger(l *slog.Logger) WaitOption { return func(o *waitOptions) { o.log = l } }

func newWaitOptions(opts []WaitOption) waitOptions {
	o := waitOptions{state: kernelLinks{}, poll: 250 * time.Millisecond, log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WaitForAddresses waits until every named link that has carrier has an
// IPv4 address, or timeout passes, or ctx ends. It returns the links
// with carrier still without an address (nil when all have one). A link
// without carrier is not waited for: no DHCP server will ever answer it.
// This is IPA's wait_for_dhcp, bounded by ipa-inspection-dhcp-wait-timeout.
func WaitForAddresses(ctx context.Context, links []string, timeout time.Duration, opts ...WaitOption) []string {
	o := newWaitOptions(opts)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(o.poll)
	defer t.Stop()
	for {
		var missing []string
		for _, l := range links {
			if o.state.Carrier(l) && !o.state.HasIPv4(l) {
				missing = append(missing, l)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return missing
		case <-t.C:
		}
	}
}

// lldpWaitDone reports whether every link with carrier has heard LLDP;
// a link whose listener failed will not hear any more by waiting.
func lldpWaitDone(links []string, heard map[string][]TLV, failed map[string]bool, state LinkState) bool {
	for _, l := range links {
		if _, ok := heard[l]; !ok && !failed[l] && state.Carrier(l) {
			return false
		}
	}
	return true
}

// withoutCarrier lists the links that have no carrier.
func withoutCarrier(links []string, state LinkState) []string {
	var out []string
	for _, l := range links {
		if !state.Carrier(l) {
			out = append(out, l)
		}
	}
	return slices.Clip(out)
}
