// Package injectfiles writes and deletes files on a deployed disk the
// way ironic-python-agent's inject_files deploy step does: IPA's
// validation of the node's inject_files property and the step's files
// argument, the partition chosen by number, device path or the file's
// first directory, contents given inline (base64) or fetched from a URL
// with "{node[...]}"/"{ports[...]}" fields filled in, and every write
// confined to the mounted filesystem with os.Root.
package injectfiles

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goipa/goipa/disk"
)

// InvalidError: the files or a path cannot be used (IPA's
// InvalidCommandParamsError); Details is IPA's wording.
type InvalidError struct{ Details string }

func (e *InvalidError) Error() string { return e.Details }

func invalid(format string, a ...any) *InvalidError {
	return &InvalidError{Details: fmt.Sprintf(format, a...)}
}

// NoPartitionError: no partition holds the file's first directory
// (IPA's DeviceNotFound).
type NoPartitionError struct {
	Dir     string   // the path's first directory
	Scanned []string // the partitions looked at
}

func (e *NoPartitionError) Error() string {
	return fmt.Sprintf("No partition found with path /%s, scanned: %s", e.Dir, strings.Join(e.Scanned, ", "))
}

// File is one entry of inject_files (IPA's inject_files.py).
type File struct {
	Path, Partition, Content string
	Deleted                  bool
	Mode, DirMode            *int
	Owner, Group             *int
}

var fileKeys = map[string]bool{"path": true, "partition": true, "content": true, "deleted": true, "mode": true, "dirmode": true, "owner": true, "group": true}

// Parse validates the node's inject_files property and the step's files
// argument as IPA does, all problems in one *InvalidError.
func Parse(fromProps, fromArgs any) ([]File, error) {
	var raw []any
	for _, src := range []struct {
		v    any
		what string
	}{{fromProps, "The `inject_files` node property"}, {fromArgs, "The `files` argument"}} {
		if src.v == nil {
			continue
		}
		l, ok := src.v.([]any)
		if !ok {
			return nil, invalid("%s must be a list, got %T", src.what, src.v)
		}
		raw = append(raw, l...)
	}
	var out []File
	var failures []string
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			failures = append(failures, fmt.Sprintf("expected a dict, got %v", r))
			continue
		}
		var unknown []string
		for k := range m {
			if !fileKeys[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		if len(unknown) > 0 {
			failures = append(failures, fmt.Sprintf("unexpected fields in %v: %s", m, strings.Join(unknown, ", ")))
		}
		f := File{}
		f.Path, _ = m["path"].(string)
		f.Content, _ = m["content"].(string)
		f.Deleted, _ = m["deleted"].(bool)
		switch p := m["partition"].(type) {
		case string:
			f.Partition = p
		case float64:
			f.Partition = strconv.Itoa(int(p))
		}
		switch {
		case f.Path == "":
			failures = append(failures, fmt.Sprintf("expected a path in %v", m))
		case path.Dir(f.Path) == "/" && f.Partition == "":
			failures = append(failures, fmt.Sprintf("%v in root directory requires \"partition\"", m))
		case strings.HasSuffix(f.Path, "/"):
			failures = append(failures, fmt.Sprintf("directories not supported for %v", m))
		}
		if f.Content != "" && f.Deleted {
			failures = append(failures, fmt.Sprintf("content cannot be used with deleted in %v", m))
		}
		for key, dst := range map[string]**int{"mode": &f.Mode, "dirmode": &f.DirMode, "owner": &f.Owner, "group": &f.Group} {
			v, present := m[key]
			if !present {
				continue
			}
			n, ok := v.(float64)
			if !ok || n != float64(int(n)) {
				failures = append(failures, fmt.Sprintf("%s must be a number in %v", key, m))
				continue
			}
			i := int(n)
			*dst = &i
		}
		out = append(out, f)
	}
	if len(failures) > 0 {
		return nil, invalid("Validation of files failed: %s", strings.Join(failures, "; "))
	}
	return out, nil
}

// relPath cleans an injected file's path to one inside a partition;
// ".." cannot climb out of it.
func relPath(p string) (string, error) {
	c := path.Clean("/" + strings.TrimSpace(p))[1:]
	if c == "" || c == "." {
		return "", invalid("Invalid path %s, must be an absolute path to a file", p)
	}
	return c, nil
}

var templateField = regexp.MustCompile(`\{(node|ports)((?:\[[^\]\[]+\])+)\}`)

// expandURL fills IPA's "{node[uuid]}"-style fields of a content URL
// (Python's str.format over the node and ports).
func expandURL(u string, node map[string]any, ports []any) (string, error) {
	var err error
	out := templateField.ReplaceAllStringFunc(u, func(m string) string {
		sub := templateField.FindStringSubmatch(m)
		var cur any = node
		if sub[1] == "ports" {
			cur = ports
		}
		for _, key := range regexp.MustCompile(`\[([^\]]+)\]`).FindAllStringSubmatch(sub[2], -1) {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[key[1]]
			case []any:
				i, e := strconv.Atoi(key[1])
				if e != nil || i < 0 || i >= len(c) {
					err = fmt.Errorf("%s: no index %s", m, key[1])
					return m
				}
				cur = c[i]
			default:
				err = fmt.Errorf("%s: cannot index %T", m, cur)
				return m
			}
		}
		if cur == nil {
			err = fmt.Errorf("%s: no such field", m)
			return m
		}
		return fmt.Sprint(cur)
	})
	return out, err
}

// Inject writes (or deletes) f on the install disk device. URL contents
// are fetched with client after node and ports fill their fields. The
// partition written is mounted only when allow accepts it (the agent's
// device check). Errors a caller branches on are *InvalidError and
// *NoPartitionError (and whatever allow returns, unchanged).
func Inject(ctx context.Context, device string, f File, node map[string]any, ports []any, client *http.Client, allow func(dev string) error) error {
	rel, err := relPath(f.Path)
	if err != nil {
		return err
	}
	return withFilePartition(ctx, device, f.Partition, rel, allow, func(root *os.Root, rel string) error {
		if f.Deleted {
			if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		if dir := path.Dir(rel); dir != "." {
			if _, err := root.Stat(dir); errors.Is(err, fs.ErrNotExist) {
				if err := root.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				if f.DirMode != nil && *f.DirMode != 0 { // IPA: `if fl.get('dirmode')`
					if err := root.Chmod(dir, UnixMode(*f.DirMode)); err != nil {
						return err
					}
				}
			}
		}
		out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if strings.Contains(f.Content, "://") {
			u, err := expandURL(f.Content, node, ports)
			if err != nil {
				out.Close()
				return err
			}
			if err := fetch(ctx, client, u, out, MaxURLContent); err != nil {
				out.Close()
				root.Remove(rel) // no half-written file stays behind
				return err
			}
		} else {
			b, err := base64.StdEncoding.DecodeString(f.Content)
			if err != nil {
				out.Close()
				return fmt.Errorf("content is not base64: %w", err)
			}
			if _, err := out.Write(b); err != nil {
				out.Close()
				return err
			}
		}
		if err := out.Close(); err != nil {
			return err
		}
		// The owner first: the kernel clears setuid and setgid on chown
		// (for root too), so the mode asked for is set last and stays.
		if f.Owner != nil || f.Group != nil {
			uid, gid := -1, -1
			if f.Owner != nil {
				uid = *f.Owner
			}
			if f.Group != nil {
				gid = *f.Group
			}
			if err := root.Chown(rel, uid, gid); err != nil {
				return err
			}
		}
		if f.Mode != nil && *f.Mode != 0 { // IPA: `if fl.get('mode')`
			if err := root.Chmod(rel, UnixMode(*f.Mode)); err != nil {
				return err
			}
		}
		return nil
	})
}

// UnixMode is the fs.FileMode for a chmod(2) mode as IPA passes it to
// os.chmod: the permission bits and setuid, setgid and sticky (04000,
// 02000, 01000), which fs.FileMode keeps elsewhere; chmod(2) ignores
// anything above 07777, and so does this.
func UnixMode(m int) fs.FileMode {
	mode := fs.FileMode(m) & fs.ModePerm
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// MaxURLContent is the most goipa writes of one file fetched from a
// URL: far above a configuration file or a small binary; a server that
// sends more (or an endless stream) fails the step instead of filling
// the tenant's partition. IPA has no limit.
const MaxURLContent = 1 << 30

// TooLargeError: a URL's content passed the limit.
type TooLargeError struct {
	URL   string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("GET %s: the content is larger than %d MiB", e.URL, e.Limit>>20)
}

// fetch copies the body at u to w, at most limit bytes: more is a
// *TooLargeError. The client's timeouts bound a stalled server; the
// body is streamed, so memory does not grow with it.
func fetch(ctx context.Context, client *http.Client, u string, w io.Writer, limit int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return &TooLargeError{URL: u, Limit: limit}
	}
	if _, err := io.Copy(w, io.LimitReader(resp.Body, limit)); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	var one [1]byte
	if n, _ := io.ReadFull(resp.Body, one[:]); n > 0 {
		return &TooLargeError{URL: u, Limit: limit}
	}
	return nil
}

// partitionsOf lists dev's partitions with their device paths.
func partitionsOf(dev string) ([]disk.Partition, error) {
	t, err := disk.ReadTable(dev)
	if err != nil {
		return nil, err
	}
	return t.Partitions, nil
}
