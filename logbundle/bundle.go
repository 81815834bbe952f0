// Package logbundle gathers what an operator reads when a ramdisk deploy
// fails: the bundle IPA's log.collect_system_logs returns and Ironic
// stores (deploy_logs_collect). It is a gzipped tar whose members carry
// the names IPA's hardware manager gives its command outputs (dmesg, df,
// ip_addr, lsblk, lsblk-full, mdstat, mount, multipath, efibootmgr, ps,
// udev/<kname>), so the operators' greps find them; everything is read in
// Go from /proc, /sys, /dev, netlink and efivarfs, and only read: a
// goipa on a host collects without changing anything.
package logbundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Member is one file of the bundle.
type Member struct {
	Name string
	Read func(ctx context.Context) ([]byte, error)
}

// Collector reads the system it runs on (or a fixture tree standing for
// it) into a bundle.
type Collector struct {
	proc, sys, dev, run string
	efiVars             string
	extra               []Member
	timeout             time.Duration
	now                 func() time.Time

	blockMu sync.Mutex
	block   *blockSnapshot // this Collect's block devices
}

// Option configures a Collector.
type Option func(*Collector)

// WithRoots reads /proc, /sys, /dev and /run from other directories:
// fixture trees in tests.
func WithRoots(proc, sys, dev, run string) Option {
	return func(c *Collector) { c.proc, c.sys, c.dev, c.run = proc, sys, dev, run }
}

// WithMember adds a member the caller produces (the agent's own log, its
// inventory); a member of the same name as a built-in one replaces it.
func WithMember(name string, read func(ctx context.Context) ([]byte, error)) Option {
	return func(c *Collector) { c.extra = append(c.extra, Member{Name: name, Read: read}) }
}

// WithEFIVars reads the boot entries from dir (an efivarfs, or a copy of
// one) instead of the running system's.
func WithEFIVars(dir string) Option { return func(c *Collector) { c.efiVars = dir } }

// WithMemberTimeout bounds each member's read (default 10 s): a member
// stuck in the kernel (statfs on a dead network mount) is reported as
// timed out and the others are still collected.
func WithMemberTimeout(d time.Duration) Option { return func(c *Collector) { c.timeout = d } }

// New returns a Collector of the running system.
func New(opts ...Option) *Collector {
	c := &Collector{proc: "/proc", sys: "/sys", dev: "/dev", run: "/run", timeout: 10 * time.Second, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.efiVars == "" {
		c.efiVars = c.sys + "/firmware/efi/efivars"
	}
	return c
}

// Members are the bundle's files in the order they are written: IPA's
// first, then goipa's additions, then the caller's.
func (c *Collector) Members() []Member {
	ms := []Member{
		{"dmesg", c.dmesg},
		{"df", c.df},
		{"efibootmgr", c.efibootmgr},
		{"ip_addr", c.ipAddr},
		{"ip_link", c.ipLink},
		{"ip_route", c.ipRoute},
		{"lsblk", c.lsblk},
		{"lsblk-full", c.lsblkFull},
		{"mdstat", c.procFile("mdstat")},
		{"mount", c.mount},
		{"multipath", c.multipath},
		{"ps", c.ps},
		{"lspci", c.lspci},
		{"lsmod", c.lsmod},
		{"cmdline", c.procFile("cmdline")},
		{"cpuinfo", c.procFile("cpuinfo")},
		{"meminfo", c.procFile("meminfo")},
	}
	for _, e := range c.extra {
		replaced := false
		for i := range ms {
			if ms[i].Name == e.Name {
				ms[i], replaced = e, true
			}
		}
		if !replaced {
			ms = append(ms, e)
		}
	}
	return ms
}

func (c *Collector) procFile(name string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return os.ReadFile(c.proc + "/" + name) }
}

// Collect writes the bundle: a gzipped tar, as IPA's gzip_and_b64encode
// makes before base64. A member that cannot be read holds the error
// instead, so one missing part never loses the rest; the udev/<kname>
// members follow the others, one per block device, as IPA's.
func (c *Collector) Collect(ctx context.Context) ([]byte, error) {
	c.blockMu.Lock()
	c.block = nil
	c.blockMu.Unlock()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := c.now().Truncate(time.Second)
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("log bundle member %s: %w", name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	for _, m := range c.Members() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := c.read(ctx, m)
		if err != nil {
			data = []byte("error: " + err.Error() + "\n")
		}
		if err := add(m.Name, data); err != nil {
			return nil, err
		}
	}
	udev, err := c.udev()
	if err != nil {
		udev = []Member{{Name: "udev/error", Read: func(context.Context) ([]byte, error) { return []byte(err.Error() + "\n"), nil }}}
	}
	for _, m := range udev {
		data, err := m.Read(ctx)
		if err != nil {
			data = []byte("error: " + err.Error() + "\n")
		}
		if err := add(m.Name, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errTimedOut is a member whose read did not end within the timeout.
var errTimedOut = errors.New("timed out")

// read runs one member, bounded: the goroutine of a read stuck in a
// system call is left behind, which is better than a bundle never sent.
func (c *Collector) read(ctx context.Context, m Member) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := m.Read(ctx)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w after %s", m.Name, errTimedOut, c.timeout)
	}
}
