package lldpswitch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens a raw AF_PACKET socket for protocol on iface inside
// network namespace ns ("" = this one). The socket stays in that
// namespace whatever thread uses it later.
func packetSocket(ns, iface string, protocol uint16) (fd int, ifi *net.Interface, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ns != "" {
		orig, err := netns.Get()
		if err != nil {
			return -1, nil, err
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			return -1, nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			return -1, nil, err
		}
		defer netns.Set(orig)
	}
	ifi, err = net.InterfaceByName(iface)
	if err != nil {
		return -1, nil, err
	}
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(protocol)))
	if err != nil {
		return -1, nil, fmt.Errorf("raw socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(protocol), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("bind to %s: %w", iface, err)
	}
	return fd, ifi, nil
}

// Speaker advertises one port's LLDP frame on a link until stopped.
type Speaker struct {
	cancel context.CancelFunc
	done   chan struct{}
	sent   atomic.Int64
	mu     sync.Mutex
	err    error
}

// Speak sends p's frame out of iface (in namespace ns) at once and then
// every interval, as a switch port does, until ctx ends or Stop is
// called, from src (the switch port's own MAC).
func Speak(ctx context.Context, ns, iface string, p Port, src net.HardwareAddr, interval time.Duration) (*Speaker, error) {
	frame, err := p.Frame(src)
	if err != nil {
		return nil, err
	}
	fd, ifi, err := packetSocket(ns, iface, EtherType)
	if err != nil {
		return nil, err
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(EtherType), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], Multicast)
	ctx, cancel := context.WithCancel(ctx)
	s := &Speaker{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer unix.Close(fd)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				// A link whose far end is not open yet (a tap before QEMU
				// attaches) refuses frames: a switch just sends again.
				s.mu.Lock()
				s.err = fmt.Errorf("sending on %s: %w", iface, err)
				s.mu.Unlock()
			} else {
				s.sent.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

// Sent is how many frames went out.
func (s *Speaker) Sent() int64 { return s.sent.Load() }

// Err is the last send error, if any.
func (s *Speaker) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop stops sending and waits for the sender to end.
func (s *Speaker) Stop() {
	s.cancel()
	<-s.done
}

// Captured is one LLDP frame seen on a link.
type Captured struct {
	Outgoing bool             // sent by this host onto the link, else received from it
	Src      net.HardwareAddr // the frame's source address
	PDU      []byte           // payload after the ethertype
}

// Capture records the LLDP frames that cross iface (in namespace ns), in
// either direction, until ctx ends or max frames were seen. It listens
// on every protocol (outgoing frames reach only such sockets) and keeps
// the LLDP ones.
func Capture(ctx context.Context, ns, iface string, max int) ([]Captured, error) {
	fd, _, err := packetSocket(ns, iface, unix.ETH_P_ALL)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	var out []Captured
	buf := make([]byte, 9216)
	for ctx.Err() == nil && len(out) < max {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("capturing on %s: %w", iface, err)
		}
		if n < ethernetHeaderSize || binary.BigEndian.Uint16(buf[12:14]) != EtherType {
			continue
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		out = append(out, Captured{
			Outgoing: ll != nil && ll.Pkttype == unix.PACKET_OUTGOING,
			Src:      append(net.HardwareAddr(nil), buf[6:12]...),
			PDU:      append([]byte(nil), buf[ethernetHeaderSize:n]...),
		})
	}
	return out, nil
}
