package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const ethPLLDP = 0x88cc

var lldpMulticast = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// WithCarrierOnly makes CollectLLDP stop waiting once every link that
// has carrier has heard LLDP: a link without a cable never will, and
// inspection should not sit out ipa-lldp-timeout for it. Without it
// CollectLLDP waits for every named link (VLAN discovery at link-up,
// before carrier is known).
func WithCarrierOnly() WaitOption { return func(o *waitOptions) { o.carrierOnly = true } }

type lldpResult struct {
	name string
	tlvs []TLV
	err  error
}

// CollectLLDP listens on each interface for an LLDP frame (a raw
// AF_PACKET socket for ethertype 0x88cc) until every interface (with
// WithCarrierOnly: every one with carrier) has heard one, or timeout
// passes, as IPA does with ipa-collect-lldp. Interfaces that hear
// nothing are absent from the result; one that fails is reported in the
// error while the others go on. A malformed frame is logged and skipped.
func CollectLLDP(ctx context.Context, ifaces []string, timeout time.Duration, opts ...WaitOption) (map[string][]TLV, error) {
	o := newWaitOptions(opts)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lctx, stop := context.WithCancel(ctx)
	results := make(chan lldpResult, len(ifaces))
	for _, name := range ifaces {
		go func() {
			tlvs, err := listenLLDP(lctx, name, o.log)
			results <- lldpResult{name, tlvs, err}
		}()
	}
	out := map[string][]TLV{}
	var errs []error
	failed := map[string]bool{}
	pending := len(ifaces)
	t := time.NewTicker(o.poll)
	defer t.Stop()
	finished := func() bool {
		if pending == 0 {
			return true
		}
		return o.carrierOnly && lldpWaitDone(ifaces, out, failed, o.state)
	}
	for !finished() {
		select {
		case r := <-results:
			pending--
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
				failed[r.name] = true
			} else if r.tlvs != nil {
				out[r.name] = r.tlvs
			}
		case <-t.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	stop()
	for ; pending > 0; pending-- { // the listeners end within one receive timeout
		if r := <-results; r.err == nil && r.tlvs != nil {
			out[r.name] = r.tlvs
		}
	}
	if o.carrierOnly {
		if silent := withoutCarrier(ifaces, o.state); len(silent) > 0 {
			o.log.Debug("lldp: not waited for, no carrier", "links", silent)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("lldp: %w", errors.Join(errs...))
	}
	return out, nil
}

func listenLLDP(ctx context.Context, name string, log *slog.Logger) ([]TLV, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(ethPLLDP)))
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPLLDP), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
	copy(mreq.Address[:], lldpMulticast[:])
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return nil, fmt.Errorf("joining the LLDP multicast group: %w", err)
	}
	// The receive timeout bounds how long a cancelled listener lingers.
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("receive timeout: %w", err)
	}
	buf := make([]byte, 9216)
	bad := 0
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n < 14 || binary.BigEndian.Uint16(buf[12:14]) != ethPLLDP {
			continue
		}
		tlvs, err := ParseLLDP(buf[14:n])
		if err == nil && len(tlvs) == 0 {
			err = errors.New("lldp: no TLV before the end")
		}
		if err != nil {
			// A broken switch or a stray frame: wait for a good one. The
			// first is a warning, repeats only debug, so a flood of bad
			// frames cannot flood the log.
			bad++
			level := slog.LevelDebug
			if bad == 1 {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "lldp: skipping a malformed frame", "interface", name, "error", err, "count", bad)
			continue
		}
		return tlvs, nil
	}
	return nil, nil
}

// kernelLinks reads link state from sysfs and the kernel's addresses.
type kernelLinks struct{}

func (kernelLinks) Carrier(name string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", name, "carrier"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (kernelLinks) HasIPv4(name string) bool {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return true
		}
	}
	return false
}
