package redfishbmc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpClient speaks QEMU's machine protocol (QMP) over its unix socket: one
// JSON object a line, a greeting, then commands answered in order with
// events interleaved. The BMC needs half a dozen commands and the SHUTDOWN
// event, which this covers in a hundred lines; digitalocean/go-qemu's qmp
// package would do too, but its module pulls go-libvirt and two more
// modules into ours for the same few calls.
type qmpClient struct {
	conn    net.Conn
	mu      sync.Mutex // one command in flight: answers carry no id
	replies chan qmpMessage
	done    chan struct{}
	onEvent func(qmpEvent)
}

type qmpMessage struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Greeting  json.RawMessage `json:"QMP"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type qmpEvent struct {
	Name string
	Data json.RawMessage
}

// errQMPClosed is a command that met a closed connection: QEMU has
// exited, or is exiting (after quit).
var errQMPClosed = errors.New("QEMU closed the QMP connection")

// QMPError is an error QEMU answered a command with.
type QMPError struct {
	Command, Class, Desc string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("QMP %s: %s: %s", e.Command, e.Class, e.Desc)
}

// dialQMP connects to the socket QEMU listens on (retrying while QEMU
// creates it), reads the greeting and leaves capabilities negotiation
// mode. onEvent is called, in order, for every event QEMU sends.
func dialQMP(ctx context.Context, path string, onEvent func(qmpEvent)) (*qmpClient, error) {
	var conn net.Conn
	for {
		var err error
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", path)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to QMP at %s: %w (last: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	c := &qmpClient{conn: conn, replies: make(chan qmpMessage, 1), done: make(chan struct{}), onEvent: onEvent}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	if !sc.Scan() {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting: %w", errors.Join(sc.Err(), errors.New("connection closed")))
	}
	var greeting qmpMessage
	if err := json.Unmarshal(sc.Bytes(), &greeting); err != nil || greeting.Greeting == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting %q: %v", sc.Bytes(), err)
	}
	go c.read(sc)
	if _, err := c.execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *qmpClient) read(sc *bufio.Scanner) {
	defer close(c.done)
	for sc.Scan() {
		var m qmpMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not QMP: nothing to answer
		}
		if m.Event != "" {
			if c.onEvent != nil {
				c.onEvent(qmpEvent{Name: m.Event, Data: m.Data})
			}
			continue
		}
		select {
		case c.replies <- m:
		default: // an answer nobody asked for: dropped
		}
	}
}

// execute runs one command and returns its "return" value.
func (c *qmpClient) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w (%v)", command, errQMPClosed, err)
	}
	answer := func(m qmpMessage) (json.RawMessage, error) {
		if m.Error != nil {
			return nil, &QMPError{Command: command, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		return m.Return, nil
	}
	select {
	case m := <-c.replies:
		return answer(m)
	case <-c.done:
		// The answer may have come just before the end (quit's does).
		select {
		case m := <-c.replies:
			return answer(m)
		default:
		}
		return nil, fmt.Errorf("QMP %s: %w", command, errQMPClosed)
	case <-ctx.Done():
		// The answer may still come and would be taken for the next
		// command's: this connection is done.
		c.conn.Close()
		return nil, fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
}

func (c *qmpClient) close() error { return c.conn.Close() }
