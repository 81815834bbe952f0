package logbundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// mountEntry is one line of /proc/self/mounts.
type mountEntry struct {
	Source, Target, FSType, Options string
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) in
// /proc/self/mounts fields.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseMounts reads /proc/self/mounts; malformed lines are skipped.
func parseMounts(data []byte) []mountEntry {
	var out []mountEntry
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		out = append(out, mountEntry{unescapeMount(f[0]), unescapeMount(f[1]), f[2], f[3]})
	}
	return out
}

// mount is `mount`'s listing: "source on target type fstype (options)".
func (c *Collector) mount(context.Context) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(c.proc, "self/mounts"))
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, m := range parseMounts(data) {
		fmt.Fprintf(&b, "%s on %s type %s (%s)\n", m.Source, m.Target, m.FSType, m.Options)
	}
	return []byte(b.String()), nil
}

// kernelModule is one line of /proc/modules.
type kernelModule struct {
	Name   string
	Size   int64
	Refs   string
	UsedBy []string
}

// parseModules reads /proc/modules ("name size refs dep1,dep2, state
// address"); malformed lines are skipped.
func parseModules(data []byte) []kernelModule {
	var out []kernelModule
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m := kernelModule{Name: f[0], Size: size, Refs: f[2]}
		if f[3] != "-" {
			for _, d := range strings.Split(f[3], ",") {
				if d != "" {
					m.UsedBy = append(m.UsedBy, d)
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// lsmod is lsmod's table of the loaded modules.
func (c *Collector) lsmod(context.Context) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(c.proc, "modules"))
	if errors.Is(err, fs.ErrNotExist) {
		return []byte("# no /proc/modules: this kernel loads no modules (all built in)\n"), nil
	}
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-24s %7s  %s\n", "Module", "Size", "Used by")
	for _, m := range parseModules(data) {
		fmt.Fprintf(&b, "%-24s %7d  %s %s\n", m.Name, m.Size, m.Refs, strings.Join(m.UsedBy, ","))
	}
	return []byte(b.String()), nil
}

// process is what ps shows of one process.
type process struct {
	PID     int
	State   string
	RSSKiB  int64
	Command string
}

// parseStat reads /proc/<pid>/stat: the command sits in parentheses and
// may itself hold spaces and parentheses, so the fields after it are
// found from the last ')'.
func parseStat(data []byte) (comm, state string, rssPages int64, ok bool) {
	s := string(data)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return "", "", 0, false
	}
	comm = s[open+1 : close]
	f := strings.Fields(s[close+1:])
	if len(f) < 22 {
		return comm, "", 0, false
	}
	rss, _ := strconv.ParseInt(f[21], 10, 64) // field 24 of proc(5)
	return comm, f[0], rss, true
}

// ps lists the processes, like `ps au` but for every process: a ramdisk
// has no terminals to filter on.
func (c *Collector) ps(context.Context) ([]byte, error) {
	ents, err := os.ReadDir(c.proc)
	if err != nil {
		return nil, err
	}
	page := int64(os.Getpagesize()) / 1024
	var procs []process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(c.proc, e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		comm, state, rss, ok := parseStat(stat)
		if !ok {
			continue
		}
		cmd := comm
		if cl, err := os.ReadFile(filepath.Join(c.proc, e.Name(), "cmdline")); err == nil && len(cl) > 0 {
			cmd = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
		} else {
			cmd = "[" + comm + "]"
		}
		procs = append(procs, process{PID: pid, State: state, RSSKiB: rss * page, Command: printable(cmd)})
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].PID < procs[j].PID })
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PID\tSTAT\tRSS\t COMMAND")
	for _, p := range procs {
		fmt.Fprintf(tw, "%d\t%s\t%d\t %s\n", p.PID, p.State, p.RSSKiB, p.Command)
	}
	tw.Flush()
	return []byte(b.String()), nil
}

// printable replaces control characters with '?', as ps does: a command
// line may hold a newline or a tab (a shell's -c script), and either
// would end or split the table's row, misaligning every column after it.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
