package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzLayer makes a layer from entries.
func fuzzLayer(entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = bytes.Repeat([]byte("x"), int(h.Size))
		}
		tw.WriteHeader(&h)
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

// unsafeToFuzz says whether the layer makes a character or block device
// (the fuzz run is root, and a node for a real disk has no business even
// in a temporary directory; devices are covered by the unit tests) or a
// file larger than 1 MiB: a sparse entry's holes are read as zeros, so a
// few bytes of tar can stand for terabytes written to the temporary
// directory's disk.
func unsafeToFuzz(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock || h.Size > 1<<20 {
			return true
		}
	}
}

// snapshot lists everything under dir with its size and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		out[p] = info.Mode().String() + " " + string(rune(info.Size()%1000))
		return nil
	})
	return out
}

// FuzzApplyLayer: whatever a layer holds (links out of the tree, "..",
// absolute names, whiteouts of the root, links then files through them),
// applying it never panics and never changes anything outside the tree.
func FuzzApplyLayer(f *testing.F) {
	now := time.Unix(1700000000, 0)
	f.Add(fuzzLayer(
		tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: now},
		tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox", ModTime: now},
		tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "etc/hosts", ModTime: now},
		tar.Header{Name: "usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 3, ModTime: now},
		tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: now},
	))
	f.Add(fuzzLayer(
		tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "../outside", ModTime: now},
		tar.Header{Name: "escape/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4, ModTime: now},
	))
	f.Add(fuzzLayer(
		tar.Header{Name: "abs", Typeflag: tar.TypeSymlink, Linkname: "/", ModTime: now},
		tar.Header{Name: "abs/tmp/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: now},
		tar.Header{Name: "../up", Typeflag: tar.TypeReg, Size: 1, ModTime: now},
		tar.Header{Name: "link", Typeflag: tar.TypeLink, Linkname: "../outside/keep", ModTime: now},
	))
	f.Add(fuzzLayer(
		tar.Header{Name: "a/.wh..wh..opq", Typeflag: tar.TypeReg, ModTime: now},
		tar.Header{Name: ".wh..", Typeflag: tar.TypeReg, ModTime: now},
		tar.Header{Name: "a/.wh.b", Typeflag: tar.TypeReg, ModTime: now},
		tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		tar.Header{Name: "d", Typeflag: tar.TypeDir, Mode: 0o7777, Uid: 1000, Gid: 1000, ModTime: now,
			PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
	))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if unsafeToFuzz(data) {
			return
		}
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		if err := os.MkdirAll(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		tree := filepath.Join(base, "tree")
		if err := os.Mkdir(tree, 0o755); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, outside)
		root, err := os.OpenRoot(tree)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ApplyLayer(ctx, root, io.LimitReader(bytes.NewReader(data), 1<<20), Options{})

		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "outside" && e.Name() != "tree" {
				t.Fatalf("the layer made %s beside the tree", e.Name())
			}
		}
		after := snapshot(t, outside)
		if len(after) != len(before) {
			t.Fatalf("the layer changed what is outside the tree: %v -> %v", before, after)
		}
		for p, v := range before {
			if after[p] != v {
				t.Fatalf("the layer changed %s outside the tree", p)
			}
		}
		if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "keep" {
			t.Fatalf("the layer changed a file outside the tree: %q, %v", b, err)
		}
	})
}
