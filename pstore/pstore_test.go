package pstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	for _, tt := range []struct {
		name, mounts, want string
	}{
		{"mounted", "sysfs /sys sysfs rw 0 0\npstore /sys/fs/pstore pstore rw,nosuid,nodev,noexec,relatime 0 0\n", "/sys/fs/pstore"},
		{"elsewhere", "pstore /mnt/p pstore rw 0 0\n", "/mnt/p"},
		{"not mounted", "proc /proc proc rw 0 0\nefivarfs /sys/firmware/efi/efivars efivarfs rw 0 0\n", ""},
		{"a device named pstore with another filesystem", "pstore /mnt ext4 rw 0 0\n", ""},
		{"short lines", "pstore /x\n\n", ""},
		{"empty", "", ""},
	} {
		if got := Find(strings.NewReader(tt.mounts)); got != tt.want {
			t.Errorf("%s: Find = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzFind(f *testing.F) {
	f.Add("pstore /sys/fs/pstore pstore rw 0 0\n")
	f.Add("pstore\tpstore pstore\n")
	f.Fuzz(func(t *testing.T, mounts string) {
		if got := Find(strings.NewReader(mounts)); got != "" && !strings.Contains(mounts, got) {
			t.Fatalf("Find = %q, not in the table", got)
		}
	})
}

func TestErase(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"dmesg-efi-168", "dmesg-efi-169", "console-ramoops-0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("Oops"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := Erase(t.Context(), dir)
	if err != nil || n != 4 {
		t.Fatalf("Erase = %d, %v; want 4 entries", n, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
	if _, err := Erase(t.Context(), filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a pstore that is not there: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Erase(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if got := (&RemoveError{Name: "dmesg-efi-1", Err: os.ErrPermission}).Error(); got != "removing dmesg-efi-1 from pstore: permission denied" {
		t.Errorf("wording: %q", got)
	}
}
