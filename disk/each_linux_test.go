package disk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

// TestWipeMetadataEach wipes two loop devices at once and reports the
// device that cannot be wiped, leaving the others done.
func TestWipeMetadataEach(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	a, _ := loop(t, 16<<20)
	b, _ := loop(t, 16<<20)
	junk := bytes.Repeat([]byte{0xa5}, 1<<20)
	for _, d := range []string{a, b} {
		require.NoError(t, os.WriteFile(d, junk, 0))
	}
	missing := filepath.Join(t.TempDir(), "missing")
	var done []string
	failures := WipeMetadataEach(context.Background(), []string{a, missing, b}, false, func(dev string) { done = append(done, dev) })
	require.Len(t, failures, 1)
	assert.Error(t, failures[missing])
	assert.ElementsMatch(t, []string{a, b}, done)
	for _, d := range []string{a, b} {
		head := make([]byte, 1<<20)
		f, err := os.Open(d)
		require.NoError(t, err)
		_, err = f.ReadAt(head, 0)
		f.Close()
		require.NoError(t, err)
		assert.Equal(t, make([]byte, 1<<20), head, "%s: the first MiB is zeroed", d)
	}
	assert.Nil(t, WipeMetadataEach(context.Background(), []string{a}, false, nil))
}

// TestBurnInEach burns in two loop devices at once, results in the order
// given, progress reported per device.
func TestBurnInEach(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	a, _ := loop(t, 8<<20)
	b, _ := loop(t, 8<<20)
	var calls atomic.Int32
	seen := map[string]int64{}
	results, errs := BurnInEach(context.Background(), []string{a, b}, 1, 0, func(dev string, done, total int64) {
		calls.Add(1)
		seen[dev] = total // unsynchronized on purpose: BurnInEach serializes calls (go test -race)
	})
	require.Len(t, results, 2)
	for i, d := range []string{a, b} {
		require.NoError(t, errs[i])
		assert.Equal(t, d, results[i].Device)
		assert.Equal(t, 1, results[i].Passes)
		assert.Equal(t, int64(8<<20), results[i].BytesWritten)
		assert.Equal(t, int64(8<<20), results[i].BytesRead)
	}
	assert.Positive(t, calls.Load())
	assert.Len(t, seen, 2)
}
