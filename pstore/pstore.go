// Package pstore clears the kernel's persistent store (pstore): the
// kernel logs and crash dumps that firmware-backed storage (EFI
// variables, ERST, ramoops) kept across reboots, so a previous tenant's
// crash does not reach the next one. It is IPA's erase_pstore clean
// step: every entry of the mounted pstore filesystem is removed, which
// frees its backing storage.
package pstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Find returns where the pstore filesystem is mounted, from a mount table
// in /proc/mounts' format; "" when it is not mounted.
func Find(mounts io.Reader) string {
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 3 && fs[0] == "pstore" && fs[2] == "pstore" {
			return fs[1]
		}
	}
	return ""
}

// MountPoint is Find on this machine's /proc/mounts.
func MountPoint() string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	return Find(f)
}

// RemoveError: an entry of the pstore could not be removed.
type RemoveError struct {
	Name string
	Err  error
}

func (e *RemoveError) Error() string {
	return fmt.Sprintf("removing %s from pstore: %v", e.Name, e.Err)
}
func (e *RemoveError) Unwrap() error { return e.Err }

// Erase removes every entry of the pstore mounted at dir and returns how
// many there were. A failed removal is a *RemoveError.
func Erase(ctx context.Context, dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return 0, &RemoveError{Name: e.Name(), Err: err}
		}
	}
	return len(ents), nil
}
