package disk

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

// TestDiscardCapable checks the decision from the queue limits. (A loop
// device cannot stand in for a device without discard: writing its
// discard_max_bytes to 0 sticks until the loop device is removed.)
func TestDiscardCapable(t *testing.T) {
	assert.NoError(t, discardCapable(4<<30, 4<<30))
	assert.ErrorIs(t, discardCapable(0, 4<<30), ErrDiscardUnsupported)
	assert.ErrorIs(t, discardCapable(4<<30, 0), ErrDiscardUnsupported, "discard without write-zeroes guarantees nothing")
}

// readDirect reads the whole device past the page cache.
func readDirect(t *testing.T, dev string, size int) []byte {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	require.NoError(t, err)
	defer f.Close()
	buf, free, err := alignedBuffer(size)
	require.NoError(t, err)
	defer free()
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	return append([]byte(nil), buf...)
}

// TestDiscardEraseOnLoopDevice plants a pattern on a loop device (which
// discards by punching holes in its file and has write-zeroes), discards
// it and reads every byte back as zero, from the device and its file.
func TestDiscardEraseOnLoopDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	const size = 48 << 20
	dev, backing := loop(t, size)
	pattern := bytes.Repeat([]byte("TENANT-SECRET-"), size/14+1)[:size]
	require.NoError(t, os.WriteFile(backing, pattern, 0o644))
	// Read it through the device once, so stale page cache would show.
	require.True(t, bytes.Contains(readDirect(t, dev, size), []byte("TENANT")))
	f, _ := os.Open(dev)
	cached := make([]byte, 4096)
	f.ReadAt(cached, 0)
	f.Close()

	var last int64
	method, err := DiscardErase(context.Background(), dev, func(done, total int64) {
		assert.Greater(t, done, last)
		assert.Equal(t, int64(2*size), total)
		last = done
	})
	require.NoError(t, err)
	assert.Equal(t, "discard", method, "loop devices have no secure discard")
	assert.Equal(t, int64(2*size), last)
	assert.Equal(t, make([]byte, size), readDirect(t, dev, size), "direct read-back")
	f, _ = os.Open(dev)
	f.ReadAt(cached, 0)
	f.Close()
	assert.Equal(t, make([]byte, 4096), cached, "buffered read-back (no stale page cache)")
	got, err := os.ReadFile(backing)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(got, []byte("TENANT")), "the backing file still holds a planted byte")
	require.NoError(t, verifyZero(dev, 64))
}
