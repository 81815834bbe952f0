package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/image"
	"github.com/goipa/goipa/internal/testenv"
)

// loopOver attaches a loop device to file: the engine writes block
// devices only, and this is one the test owns.
func loopOver(t *testing.T, file string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", file).CombinedOutput()
	require.NoError(t, err, "losetup: %s", out)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

// TestWriteImageChecksumNone: --checksum none writes the image without
// verification; an absent --checksum is refused before anything is
// touched, and "none" is refused by the engine when it comes as a
// checksum (the agent's path), so only this flag skips verification.
func TestWriteImageChecksumNone(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	dir := t.TempDir()
	img := make([]byte, 3<<20+512) // past the held-back first MiB, not a whole MiB
	rand.Read(img)
	src := filepath.Join(dir, "disk.raw")
	require.NoError(t, os.WriteFile(src, img, 0o600))
	old := bytes.Repeat([]byte{0xcc}, 4<<20)
	backing := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(backing, old, 0o600))
	dev := loopOver(t, backing)
	ctx := context.Background()
	read := func() []byte {
		b, err := os.ReadFile(dev)
		require.NoError(t, err)
		return b
	}

	err := runWriteImage(ctx, []string{"--source", "file://" + src, "--device", dev})
	require.Error(t, err, "no --checksum must be refused")
	assert.Contains(t, err.Error(), "--checksum")
	got := read()
	assert.Equal(t, old, got, "a refused run must not touch the device")

	require.NoError(t, runWriteImage(ctx, []string{"--source", "file://" + src, "--checksum", "none", "--device", dev}))
	got = read()
	assert.Equal(t, img, got[:len(img)], "--checksum none must write the image")

	// A wrong checksum still fails: "none" is a word of its own, not a
	// way around a mismatch.
	wrong := sha256.Sum256([]byte("not the image"))
	err = runWriteImage(ctx, []string{"--source", "file://" + src, "--checksum", "sha256:" + hex.EncodeToString(wrong[:]), "--device", dev})
	var cm *image.ChecksumMismatchError
	require.True(t, errors.As(err, &cm), "got %v", err)
	got = read()
	assert.Equal(t, make([]byte, 1<<20), got[:1<<20], "a mismatch leaves the first MiB zeroed")

	// The agent's path: the checksum comes from Ironic in a ChecksumSpec.
	_, err = image.Write(ctx, image.Request{URLs: []string{"file://" + src}, Device: dev,
		Checksum: image.ChecksumSpec{Checksum: "none"}})
	require.ErrorIs(t, err, image.ErrUnverifiedRefused)
	_, err = image.Write(ctx, image.Request{URLs: []string{"file://" + src}, Device: dev,
		Checksum: image.ChecksumSpec{OSHashAlgo: "sha256", OSHashValue: "none"}})
	require.Error(t, err, `os_hash_value "none" must be refused`)
}
