package logbundle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// dmesg is the kernel ring buffer as dmesg prints it. READ_ALL leaves
// the buffer as it is (READ_CLEAR would empty it).
func (c *Collector) dmesg(context.Context) ([]byte, error) {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil {
		return nil, fmt.Errorf("kernel log size: %w", err)
	}
	buf := make([]byte, n)
	m, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return nil, fmt.Errorf("kernel log: %w", err)
	}
	return stripLogLevels(buf[:m]), nil
}

// stripLogLevels drops the "<6>" priority prefix syslog(2) gives each
// line, which dmesg does not print.
func stripLogLevels(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	out.Grow(len(b))
	for _, l := range lines {
		if len(l) > 2 && l[0] == '<' {
			if end := strings.IndexByte(l, '>'); end > 1 && end <= 4 && isDigits(l[1:end]) {
				l = l[end+1:]
			}
		}
		out.WriteString(l)
	}
	return []byte(out.String())
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// df is `df -a`: every mount with its 1K-blocks, used, available and use
// percentage (statfs of the mount point, which only reads).
func (c *Collector) df(ctx context.Context) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(c.proc, "self/mounts"))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %12s %12s %12s %4s %s\n", "Filesystem", "1K-blocks", "Used", "Available", "Use%", "Mounted on")
	for _, m := range parseMounts(data) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var st unix.Statfs_t
		if err := unix.Statfs(m.Target, &st); err != nil {
			fmt.Fprintf(&b, "%-20s %12s %12s %12s %4s %s\n", m.Source, "-", "-", "-", "-", m.Target)
			continue
		}
		fmt.Fprintln(&b, dfLine(m.Source, m.Target, uint64(st.Bsize), st.Blocks, st.Bfree, st.Bavail))
	}
	return []byte(b.String()), nil
}

// dfLine is one df row; Use% rounds up as df does, and is "-" for a
// filesystem without blocks (proc, sysfs).
func dfLine(source, target string, bsize, blocks, bfree, bavail uint64) string {
	total := blocks * bsize / 1024
	used := (blocks - bfree) * bsize / 1024
	avail := bavail * bsize / 1024
	pct := "-"
	if used+avail > 0 {
		pct = fmt.Sprintf("%d%%", (used*100+used+avail-1)/(used+avail))
	}
	return fmt.Sprintf("%-20s %12d %12d %12d %4s %s", source, total, used, avail, pct, target)
}
