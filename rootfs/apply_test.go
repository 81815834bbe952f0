package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	uid, gid         int
	xattrs           map[string]string
}

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func layerTar(t *testing.T, ents ...entry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		uid, gid := e.uid, e.gid
		if uid == 0 && gid == 0 {
			uid, gid = os.Getuid(), os.Getgid()
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: mode, Uid: uid, Gid: gid, ModTime: mtime, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			h.Size = 0
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

// tree lists what is under dir: "path type [target|body]" lines.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" = "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func apply(t *testing.T, dir string, layers ...[]entry) error {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, l := range layers {
		if _, err := ApplyLayer(context.Background(), root, layerTar(t, l...), Options{}); err != nil {
			return err
		}
	}
	return nil
}

func TestApplyLayers(t *testing.T) {
	base := []entry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/hosts", body: "base"},
		{name: "etc/gone", body: "x"},
		{name: "opt/", typ: tar.TypeDir},
		{name: "opt/a", body: "a"},
		{name: "opt/sub/", typ: tar.TypeDir},
		{name: "opt/sub/deep", body: "d"},
		{name: "usr/bin/tool", body: "tool"},
		{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "var/dir/", typ: tar.TypeDir},
		{name: "var/dir/f", body: "f"},
	}
	for _, tc := range []struct {
		name  string
		upper []entry
		want  []string
	}{
		{"whiteout removes a file", []entry{{name: "etc/.wh.gone"}},
			[]string{"bin -> usr/bin", "etc/", "etc/hosts = base", "opt/", "opt/a = a", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
		{"whiteout removes a tree", []entry{{name: "var/.wh.dir"}},
			[]string{"bin -> usr/bin", "etc/", "etc/gone = x", "etc/hosts = base", "opt/", "opt/a = a", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/"}},
		{"whiteout of a missing name is harmless", []entry{{name: "nowhere/.wh.x"}},
			[]string{"bin -> usr/bin", "etc/", "etc/gone = x", "etc/hosts = base", "opt/", "opt/a = a", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
		{"opaque dir keeps only this layer's entries, marker first", []entry{{name: "opt/", typ: tar.TypeDir}, {name: "opt/.wh..wh..opq"}, {name: "opt/sub/new", body: "n"}},
			[]string{"bin -> usr/bin", "etc/", "etc/gone = x", "etc/hosts = base", "opt/", "opt/sub/", "opt/sub/new = n", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
		{"opaque dir, marker last", []entry{{name: "opt/b", body: "b"}, {name: "opt/.wh..wh..opq"}},
			[]string{"bin -> usr/bin", "etc/", "etc/gone = x", "etc/hosts = base", "opt/", "opt/b = b", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
		{"file replaces dir, dir replaces symlink, symlink replaces file", []entry{{name: "var/dir", body: "now a file"}, {name: "bin/", typ: tar.TypeDir}, {name: "etc/hosts", typ: tar.TypeSymlink, link: "/run/hosts"}},
			[]string{"bin/", "etc/", "etc/gone = x", "etc/hosts -> /run/hosts", "opt/", "opt/a = a", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir = now a file"}},
		{"a file replaces a symlink without writing through it", []entry{{name: "bin", body: "plain"}},
			[]string{"bin = plain", "etc/", "etc/gone = x", "etc/hosts = base", "opt/", "opt/a = a", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
		{"names with ./ and / prefixes", []entry{{name: "./etc/hosts", body: "dot"}, {name: "/opt/a", body: "slash"}},
			[]string{"bin -> usr/bin", "etc/", "etc/gone = x", "etc/hosts = dot", "opt/", "opt/a = slash", "opt/sub/", "opt/sub/deep = d", "usr/", "usr/bin/", "usr/bin/tool = tool", "var/", "var/dir/", "var/dir/f = f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := apply(t, dir, base, tc.upper); err != nil {
				t.Fatal(err)
			}
			if got := tree(t, dir); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestApplyMetadata(t *testing.T) {
	dir := t.TempDir()
	err := apply(t, dir, []entry{
		{name: "usr/bin/su", body: "setuid", mode: 0o4755},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "usr/bin/sudo", typ: tar.TypeLink, link: "usr/bin/su"},
		{name: "usr/lib/x", typ: tar.TypeSymlink, link: "../bin/su"},
		{name: "etc/shadow", body: "s", mode: 0o600},
		{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620},
		{name: "etc/with-xattr", body: "x", xattrs: map[string]string{"user.goipa": "yes"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(p string, want fs.FileMode) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode(), want)
		}
		if p != "tmp" && !st.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", p, st.ModTime(), mtime)
		}
	}
	check("usr/bin/su", 0o755|fs.ModeSetuid)
	check("tmp", fs.ModeDir|0o777|fs.ModeSticky)
	check("etc/shadow", 0o600)
	check("run/fifo", fs.ModeNamedPipe|0o620)
	check("usr/lib/x", fs.ModeSymlink|0o777)
	a, _ := os.Stat(filepath.Join(dir, "usr/bin/su"))
	b, _ := os.Stat(filepath.Join(dir, "usr/bin/sudo"))
	if !os.SameFile(a, b) {
		t.Error("usr/bin/sudo is not a hard link of usr/bin/su")
	}
	if st, _ := os.Stat(filepath.Join(dir, "tmp")); !st.ModTime().Equal(mtime) {
		t.Errorf("tmp: directory mtime %v, want %v", st.ModTime(), mtime)
	}
	buf := make([]byte, 16)
	n, err := unix.Getxattr(filepath.Join(dir, "etc/with-xattr"), "user.goipa", buf)
	if errors.Is(err, unix.ENOTSUP) {
		t.Logf("the test directory's filesystem has no user xattrs: %v", err)
	} else if err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xattr user.goipa = %q, %v", buf[:n], err)
	}
}

func TestApplyOwners(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to other users needs root")
	}
	dir := t.TempDir()
	if err := apply(t, dir, []entry{
		{name: "home/u/", typ: tar.TypeDir, uid: 1000, gid: 1000},
		{name: "home/u/f", body: "f", uid: 1000, gid: 100, mode: 0o2755},
		{name: "home/u/l", typ: tar.TypeSymlink, link: "f", uid: 1001, gid: 1001},
	}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][2]uint32{"home/u": {1000, 1000}, "home/u/f": {1000, 100}, "home/u/l": {1001, 1001}} {
		st, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		s := st.Sys().(*syscall.Stat_t)
		if s.Uid != want[0] || s.Gid != want[1] {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, s.Uid, s.Gid, want[0], want[1])
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "home/u/f")); st.Mode()&fs.ModeSetgid == 0 {
		t.Errorf("home/u/f lost its setgid bit to chown: %v", st.Mode())
	}
}

// TestApplyRefusesEscapes: names, hard links and symlinked parents that
// lead outside the tree fail the layer and write nothing outside.
func TestApplyRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]entry
	}{
		{"dot-dot name", [][]entry{{{name: "../outside", body: "x"}}}},
		{"climbing name", [][]entry{{{name: "a/../../outside", body: "x"}}}},
		{"hard link out", [][]entry{{{name: "l", typ: tar.TypeLink, link: "../outside"}}}},
		{"write through an absolute symlink", [][]entry{{{name: "esc", typ: tar.TypeSymlink, link: "/"}}, {{name: "esc/outside", body: "x"}}}},
		{"write through a climbing symlink", [][]entry{{{name: "esc", typ: tar.TypeSymlink, link: "../.."}}, {{name: "esc/outside", body: "x"}}}},
		{"whiteout through a symlink", [][]entry{{{name: "esc", typ: tar.TypeSymlink, link: ".."}}, {{name: "esc/.wh.keep"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(parent, "keep"), []byte("k"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := apply(t, dir, tc.layers...)
			if err == nil {
				t.Fatal("applied")
			}
			t.Logf("refused: %v", err)
			if _, err := os.Stat(filepath.Join(parent, "outside")); err == nil {
				t.Error("a file was written outside the root")
			}
			if _, err := os.Stat(filepath.Join(parent, "keep")); err != nil {
				t.Error("a file outside the root was removed")
			}
		})
	}
}

func TestApplyTruncatedLayer(t *testing.T) {
	r := layerTar(t, entry{name: "big", body: strings.Repeat("x", 10000)})
	b := make([]byte, r.Len()-3000)
	r.Read(b)
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ApplyLayer(context.Background(), root, bytes.NewReader(b), Options{}); err == nil {
		t.Fatal("a truncated layer applied")
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "./a/b/": "a/b", "/a": "a", "//a//b": "a/b", "a/./b": "a/b", "a/../b": "b", "": ".", "/": ".", "./": ".",
		"..": "", "../a": "", "a/../..": "", "/../a": "", "a\x00b": "",
	} {
		got, err := CleanPath(in)
		if want == "" {
			var esc *EscapeError
			if !errors.As(err, &esc) {
				t.Errorf("CleanPath(%q) = %q, %v; want an EscapeError", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzCleanPath: whatever the name, an accepted path is local to the
// tree (no "..", not absolute, no NUL).
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "./a/../../b", "/", "", "a/..", "..a/b", "a/..b", "\x00", "./././.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := CleanPath(name)
		if err != nil {
			return
		}
		if p != "." && !filepath.IsLocal(p) {
			t.Fatalf("CleanPath(%q) = %q, not local", name, p)
		}
		if path.Clean(p) != p || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			t.Fatalf("CleanPath(%q) = %q, not clean", name, p)
		}
		for _, el := range strings.Split(p, "/") {
			if el == ".." {
				t.Fatalf("CleanPath(%q) = %q climbs", name, p)
			}
		}
	})
}
