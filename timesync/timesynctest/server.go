// Package timesynctest is an NTP server on loopback for tests, in the
// manner of httptest: it answers every request as a stratum 1 server
// whose clock runs Offset ahead of this machine's.
package timesynctest

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// Server answers NTP requests on a loopback UDP port.
type Server struct {
	Addr   string // host:port
	conn   net.PacketConn
	mu     sync.Mutex
	offset time.Duration
	leap   byte
	wg     sync.WaitGroup
}

// NewServer starts a server whose clock is offset from the local one.
func NewServer(offset time.Duration) (*Server, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: c.LocalAddr().String(), conn: c, offset: offset}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Unsynchronised makes the server answer with the leap indicator "clock
// not synchronised" (3), which a client must refuse.
func (s *Server) Unsynchronised() {
	s.mu.Lock()
	s.leap = 3
	s.mu.Unlock()
}

// Close stops the server.
func (s *Server) Close() {
	s.conn.Close()
	s.wg.Wait()
}

const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970

func putTime(b []byte, t time.Time) {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	binary.BigEndian.PutUint64(b, secs<<32|frac)
}

func (s *Server) serve() {
	defer s.wg.Done()
	buf := make([]byte, 512)
	for {
		n, addr, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 48 {
			continue
		}
		s.mu.Lock()
		offset, leap := s.offset, s.leap
		s.mu.Unlock()
		now := time.Now().Add(offset)
		out := make([]byte, 48)
		out[0] = leap<<6 | 4<<3 | 4 // leap, version 4, mode 4 (server)
		out[1] = 1                  // stratum 1
		out[2] = 4                  // poll
		out[3] = 0xec               // precision, about a microsecond
		copy(out[12:16], "GOIP")    // reference id
		putTime(out[16:24], now.Add(-time.Second))
		copy(out[24:32], buf[40:48]) // origin: the client's transmit time
		putTime(out[32:40], now)
		putTime(out[40:48], now)
		s.conn.WriteTo(out, addr)
	}
}
