package netcfg

import (
	"context"
	"sync"
	"time"
)

// LLDPWatch is an LLDP collection running in the background
// (WatchLLDP): what was heard is read while it runs, Done says when it
// is over.
type LLDPWatch struct {
	done  chan struct{}
	mu    sync.Mutex
	heard map[string][]TLV
}

// WatchLLDP lists the links (links, called in the background too, so
// the caller's start waits for nothing) and runs CollectLLDP on them
// with WithCarrierOnly, bounded by timeout: an agent heartbeats while a
// switch takes its time, and inspection waits for Done. Each neighbour
// heard is logged (WithWaitLogger).
func WatchLLDP(ctx context.Context, links func(context.Context) ([]string, error), timeout time.Duration, opts ...WaitOption) *LLDPWatch {
	log := newWaitOptions(opts).log
	w := &LLDPWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		names, err := links(ctx)
		if err != nil {
			log.Warn("lldp: listing interfaces", "error", err)
			return
		}
		start := time.Now()
		got, err := CollectLLDP(ctx, names, timeout, append([]WaitOption{WithCarrierOnly()}, opts...)...)
		if err != nil {
			log.Warn("lldp", "error", err)
		}
		for name, tlvs := range got {
			n := Summarize(tlvs)
			log.Info("lldp neighbour", "interface", name, "switch", n.SystemName, "chassis", n.ChassisID, "port", n.PortID, "vlans", n.VLANs)
		}
		log.Info("lldp collection done", "heard", len(got), "interfaces", len(names), "took", time.Since(start).Round(time.Millisecond))
		w.mu.Lock()
		w.heard = got
		w.mu.Unlock()
	}()
	return w
}

// Done is closed when the collection is over.
func (w *LLDPWatch) Done() <-chan struct{} { return w.done }

// Heard is what link heard; nothing before the collection is over.
func (w *LLDPWatch) Heard(link string) []TLV {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.heard[link]
}
