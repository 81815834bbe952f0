package netcfg

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeLinks is link state that changes as the test's clock of polls
// advances: a link gets its address at poll addrAt[name] (0 = never).
type fakeLinks struct {
	mu      sync.Mutex
	carrier map[string]bool
	addrAt  map[string]int
	polls   map[string]int
}

func (f *fakeLinks) Carrier(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.carrier[name]
}

func (f *fakeLinks) HasIPv4(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls[name]++
	return f.addrAt[name] > 0 && f.polls[name] >= f.addrAt[name]
}

func TestWaitForAddresses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		carrier     map[string]bool
		addrAt      map[string]int
		links       []string
		wantMissing []string
		wantTimeout bool
	}{
		{name: "all addressed at once", carrier: map[string]bool{"a": true, "b": true}, addrAt: map[string]int{"a": 1, "b": 1}, links: []string{"a", "b"}},
		{name: "second gets its lease later", carrier: map[string]bool{"a": true, "b": true}, addrAt: map[string]int{"a": 1, "b": 4}, links: []string{"a", "b"}},
		{name: "a link without carrier is not waited for", carrier: map[string]bool{"a": true}, addrAt: map[string]int{"a": 1}, links: []string{"a", "nocable"}},
		{name: "no link has carrier", carrier: map[string]bool{}, links: []string{"a", "b"}},
		{name: "no DHCP answer: bounded, the link is named", carrier: map[string]bool{"a": true, "b": true}, addrAt: map[string]int{"a": 1}, links: []string{"a", "b"}, wantMissing: []string{"b"}, wantTimeout: true},
		{name: "no links", links: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLinks{carrier: tc.carrier, addrAt: tc.addrAt, polls: map[string]int{}}
			timeout := 300 * time.Millisecond
			start := time.Now()
			missing := WaitForAddresses(context.Background(), tc.links, timeout, WithLinkState(f), WithPollInterval(5*time.Millisecond))
			took := time.Since(start)
			assert.Equal(t, tc.wantMissing, missing)
			if tc.wantTimeout {
				assert.GreaterOrEqual(t, took, timeout, "gave up before the timeout")
			} else {
				assert.Less(t, took, timeout, "waited although nothing was missing")
			}
		})
	}
}

func TestWaitForAddressesStopsWithTheContext(t *testing.T) {
	f := &fakeLinks{carrier: map[string]bool{"a": true}, polls: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	missing := WaitForAddresses(ctx, []string{"a"}, time.Hour, WithLinkState(f), WithPollInterval(5*time.Millisecond))
	assert.Equal(t, []string{"a"}, missing)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestLLDPWaitDone(t *testing.T) {
	heard := map[string][]TLV{"a": {{Type: 1, Value: []byte{4, 1, 2, 3, 4, 5, 6}}}}
	for _, tc := range []struct {
		name    string
		carrier map[string]bool
		failed  map[string]bool
		want    bool
	}{
		{name: "every carrier link heard", carrier: map[string]bool{"a": true}, want: true},
		{name: "a carrier link still silent", carrier: map[string]bool{"a": true, "b": true}, want: false},
		{name: "the silent link has no cable", carrier: map[string]bool{"a": true, "b": false}, want: true},
		{name: "the silent link's listener failed", carrier: map[string]bool{"a": true, "b": true}, failed: map[string]bool{"b": true}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLinks{carrier: tc.carrier, polls: map[string]int{}}
			assert.Equal(t, tc.want, lldpWaitDone([]string{"a", "b"}, heard, tc.failed, f))
		})
	}
}
