// Package rootfs applies container image layers (OCI or Docker tar
// streams) to a directory tree, one after the other, as a container
// runtime's snapshotter would, but straight into the target: a layer is
// read once, as it arrives, and never held in memory or on a scratch
// disk. Every write goes through an os.Root, so no entry name, hard link
// or symlink planted by an earlier layer can lead a write outside the
// tree.
package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The OCI whiteout names (image-spec layer.md): ".wh.<name>" deletes
// <name> from the layers below; ".wh..wh..opq" in a directory hides
// everything the layers below put there.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// EscapeError is a layer entry whose name (or hard link target) would
// land outside the tree.
type EscapeError struct {
	Name string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("layer entry %q escapes the root", e.Name)
}

// CleanPath turns a tar entry name into a path relative to the tree:
// leading "/" and "./" are dropped, "a/../b" is folded. A name that
// climbs above the tree ("../x", "a/../../x"), is empty after cleaning
// the root away only to name the root itself (returned as "."), or holds
// a NUL is refused with an *EscapeError: such an entry comes from a
// broken or hostile image, and a runtime that silently clamps it would
// write somewhere the image's author did not say.
func CleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", &EscapeError{Name: name}
	}
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return ".", nil
	}
	// Clean before checking: "a/../../x" climbs even though it starts
	// inside.
	c := path.Clean(rel)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", &EscapeError{Name: name}
	}
	return c, nil
}

// Stats counts what a layer did.
type Stats struct {
	Entries   int   // tar entries read
	Files     int   // regular files written
	Dirs      int   // directories made or updated
	Symlinks  int   //
	Hardlinks int   //
	Devices   int   // character and block devices, FIFOs
	Removed   int   // whiteouts applied (files and trees removed)
	Opaque    int   // opaque directories emptied of lower layers' entries
	Bytes     int64 // file content written
}

// Options tunes ApplyLayer.
type Options struct {
	// Progress, if set, is called with the bytes written so far after
	// each file.
	Progress func(bytes int64)
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// layer is the state of one layer's application.
type layer struct {
	root  *os.Root
	opts  Options
	stats Stats
	// written holds every path this layer created or updated, with its
	// parents: an opaque marker must keep them and drop only what the
	// layers below left. It grows with the layer's entry count, never
	// with its bytes.
	written map[string]bool
	opaque  []string
	dirs    []dirTime
}

type dirTime struct {
	path  string
	mtime time.Time
}

// ApplyLayer reads one uncompressed layer tar stream and applies it to
// the tree under root: entries in order, whiteouts delete what earlier
// layers wrote, opaque directories lose the lower layers' entries, and
// files, directories, symlinks, hard links and device nodes get their
// modes (setuid, setgid and sticky included), owners (numeric), mtimes
// and extended attributes. Directory mtimes are set when the layer ends,
// since writing into a directory changes its mtime.
func ApplyLayer(ctx context.Context, root *os.Root, r io.Reader, opts Options) (Stats, error) {
	l := &layer{root: root, opts: opts, written: map[string]bool{".": true}}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return l.stats, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return l.stats, fmt.Errorf("reading the layer: %w", err)
		}
		l.stats.Entries++
		if err := l.entry(hdr, tr); err != nil {
			return l.stats, err
		}
	}
	for _, d := range l.opaque {
		if err := l.prune(d); err != nil {
			return l.stats, fmt.Errorf("opaque directory %s: %w", d, err)
		}
	}
	// Deepest first, so setting a child's time cannot disturb its
	// parent's afterwards (it does not on Linux, but the order is free).
	sort.Slice(l.dirs, func(i, j int) bool { return len(l.dirs[i].path) > len(l.dirs[j].path) })
	for _, d := range l.dirs {
		if err := root.Chtimes(d.path, d.mtime, d.mtime); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return l.stats, fmt.Errorf("%s: setting its mtime: %w", d.path, err)
		}
	}
	return l.stats, nil
}

func (l *layer) mark(p string) {
	for p != "." && !l.written[p] {
		l.written[p] = true
		p = path.Dir(p)
	}
}

func (l *layer) entry(hdr *tar.Header, tr io.Reader) error {
	p, err := CleanPath(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if base == opaqueMarker {
		l.opaque = append(l.opaque, dir)
		l.mark(dir)
		return nil
	}
	if name, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("layer entry %q: a whiteout must name a file", hdr.Name)
		}
		target := path.Join(dir, name)
		_, err := l.root.Lstat(target)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil {
			err = l.root.RemoveAll(target)
		}
		if err != nil {
			return fmt.Errorf("whiteout %s: %w", target, err)
		}
		l.stats.Removed++
		return nil
	}
	if p == "." {
		// The root directory's own entry: its metadata only.
		if hdr.Typeflag == tar.TypeDir {
			return l.meta(p, hdr, nil)
		}
		return fmt.Errorf("layer entry %q: the root must be a directory", hdr.Name)
	}
	if dir != "." {
		if err := l.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: making its parent: %w", p, err)
		}
	}
	l.mark(p)
	existing, lerr := l.root.Lstat(p)
	exists := lerr == nil
	// Anything but a directory over a directory replaces what is there;
	// a directory over a directory merges, as in every runtime.
	if exists && !(hdr.Typeflag == tar.TypeDir && existing.IsDir()) {
		if err := l.root.RemoveAll(p); err != nil {
			return fmt.Errorf("%s: replacing it: %w", p, err)
		}
		exists = false
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := l.root.Mkdir(p, 0o700); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		l.stats.Dirs++
		if err := l.meta(p, hdr, nil); err != nil {
			return err
		}
		l.dirs = append(l.dirs, dirTime{p, hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		return l.file(p, hdr, tr)
	case tar.TypeSymlink:
		if err := l.root.Symlink(hdr.Linkname, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		l.stats.Symlinks++
		return l.linkMeta(p, hdr)
	case tar.TypeLink:
		target, err := CleanPath(hdr.Linkname)
		if err != nil || target == "." {
			return &EscapeError{Name: hdr.Name + " -> " + hdr.Linkname}
		}
		if err := l.root.Link(target, p); err != nil {
			return fmt.Errorf("hard link %s -> %s: %w", p, target, err)
		}
		l.stats.Hardlinks++
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		err := l.inParent(p, func(fd int, base string) error {
			return unix.Mknodat(fd, base, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
		})
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		l.stats.Devices++
		return l.meta(p, hdr, nil)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("layer entry %q: unsupported tar type %q", hdr.Name, hdr.Typeflag)
	}
}

func (l *layer) file(p string, hdr *tar.Header, r io.Reader) error {
	f, err := l.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	bp := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), *bp)
	copyBuffers.Put(bp)
	l.stats.Bytes += n
	if err == nil && n != hdr.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("%s: the target filesystem is full: %w", p, err)
		}
		return fmt.Errorf("%s: %w", p, err)
	}
	err = l.meta(p, hdr, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: %w", p, cerr)
	}
	if err != nil {
		return err
	}
	l.stats.Files++
	if l.opts.Progress != nil {
		l.opts.Progress(l.stats.Bytes)
	}
	return nil
}

// meta sets owner, mode, xattrs and (but for directories, done when
// the layer ends) mtime, in that order: chown clears setuid bits and
// file capabilities, so the mode and the xattrs come after it.
func (l *layer) meta(p string, hdr *tar.Header, f *os.File) error {
	if err := l.root.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("%s: chown: %w", p, err)
	}
	if err := l.root.Chmod(p, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return fmt.Errorf("%s: chmod: %w", p, err)
	}
	if xattrs := paxXattrs(hdr); len(xattrs) > 0 {
		if f == nil {
			var err error
			if f, err = l.root.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0); err != nil {
				return fmt.Errorf("%s: opening for xattrs: %w", p, err)
			}
			defer f.Close()
		}
		for _, k := range sortedKeys(xattrs) {
			if err := unix.Fsetxattr(int(f.Fd()), k, []byte(xattrs[k]), 0); err != nil {
				return fmt.Errorf("%s: xattr %s: %w", p, k, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := l.root.Chtimes(p, hdr.ModTime, hdr.ModTime); err != nil {
			return fmt.Errorf("%s: mtime: %w", p, err)
		}
	}
	return nil
}

// linkMeta sets a symlink's owner and mtime without following it (its
// mode means nothing on Linux, and user xattrs are not allowed on it).
func (l *layer) linkMeta(p string, hdr *tar.Header) error {
	if err := l.root.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("%s: chown: %w", p, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	return l.inParent(p, func(fd int, base string) error {
		if err := unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: mtime: %w", p, err)
		}
		return nil
	})
}

// inParent runs fn with a descriptor of p's parent, opened through the
// root, and p's last element: for the calls os.Root lacks (mknod,
// lutimes), with the same confinement.
func (l *layer) inParent(p string, fn func(fd int, base string) error) error {
	dir, base := path.Split(p)
	if dir == "" {
		dir = "."
	}
	d, err := l.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()), base)
}

// prune removes from dir (recursively) every entry this layer did not
// write: what an opaque marker hides.
func (l *layer) prune(dir string) error {
	d, err := l.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	l.stats.Opaque++
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		switch {
		case !l.written[p]:
			if err := l.root.RemoveAll(p); err != nil {
				return err
			}
		case e.IsDir():
			if err := l.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// paxXattrs reads the extended attributes a tar entry carries as
// SCHILY.xattr.* PAX records (what Docker, buildah and containerd
// write).
func paxXattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && name != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
