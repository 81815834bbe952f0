package disk

import (
	"context"
	"crypto/aes"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

func TestBurnInOnLoopDevice(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	const size = 24 << 20
	dev, _ := loop(t, size)
	var last int64
	r, err := BurnIn(context.Background(), dev, 2, 0, func(done, total int64) { last = done })
	require.NoError(t, err)
	assert.Equal(t, 2, r.Passes)
	assert.Equal(t, int64(2*size), r.BytesWritten)
	assert.Equal(t, int64(2*size), r.BytesRead)
	assert.Equal(t, int64(4*size), last)

	// The comparison finds a device that returns other bytes than the
	// ones written (here: checked against another key).
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	require.NoError(t, err)
	defer f.Close()
	block, _ := aes.NewCipher(make([]byte, 16))
	var done atomic.Int64
	_, err = verifyStream(context.Background(), f, size, func(off int64, b []byte) { keystream(block, [16]byte{}, off, b) }, &done, size, func(int64, int64) {})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "byte 0 read back")

	// Time-based: stops at the deadline without an error.
	big, _ := loop(t, 512<<20)
	start := time.Now()
	r, err = BurnIn(context.Background(), big, 4, 300*time.Millisecond, nil)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Greater(t, r.BytesWritten, int64(0))

	// Cancelled: an error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = BurnIn(ctx, dev, 1, 0, nil)
	assert.ErrorIs(t, err, context.Canceled)
}
