package netcfg

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const ethPLLDP = 0x88cc

var lldpMulticast = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// CollectLLDP listens on each interface for an LLDP frame (a raw
// AF_PACKET socket for ethertype 0x88cc) until every interface has heard
// one or timeout passes, as IPA does with ipa-collect-lldp. Interfaces
// that hear nothing are absent from the result; one that fails is
// reported in the error while the others go on.
func CollectLLDP(ctx context.Context, ifaces []string, timeout time.Duration) (map[string][]TLV, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := map[string][]TLV{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, name := range ifaces {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			tlvs, err := listenLLDP(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			if tlvs != nil {
				out[name] = tlvs
			}
		}(name)
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, fmt.Errorf("lldp: %v", errs)
	}
	return out, nil
}

func listenLLDP(ctx context.Context, name string) ([]TLV, error) {
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
	buf := make([]byte, 9216)
	for ctx.Err() == nil {
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
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
		if err != nil || len(tlvs) == 0 {
			continue // a malformed frame: wait for a good one
		}
		return tlvs, nil
	}
	return nil, nil
}
