package redfishbmc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ConsoleLog keeps the machine's serial console across power cycles (each
// power-on adds a line saying how it boots), so a test can wait for a line
// after a given point: the first boot's marker must not satisfy a wait
// for the second's.
type ConsoleLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{}
}

// Write takes console output; lines end with a newline.
func (c *ConsoleLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := strings.IndexByte(string(c.partial), '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, strings.TrimSuffix(string(c.partial[:i]), "\r"))
		c.partial = c.partial[i+1:]
	}
	c.notify()
	return len(p), nil
}

func (c *ConsoleLog) notify() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// Mark is the number of lines so far: WaitFor(..., mark) looks at what
// comes after.
func (c *ConsoleLog) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// WaitFor waits until a line from line number from on contains s, and
// returns that line.
func (c *ConsoleLog) WaitFor(ctx context.Context, s string, from int, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			if strings.Contains(c.lines[i], s) {
				l := c.lines[i]
				c.mu.Unlock()
				return l, nil
			}
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return "", fmt.Errorf("no %q on the console within %s", s, timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// String is the whole console.
func (c *ConsoleLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// Tail is the last n lines.
func (c *ConsoleLog) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
