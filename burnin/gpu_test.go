package burnin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gpuBurnScript installs a gpu_burn that lists two GPUs, records its
// calls, and exits with exit when burning.
func gpuBurnScript(t *testing.T, exit string) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$PWD $*\" >> " + calls + "\n" +
		"if [ \"$1\" = -l ]; then echo 'ID 0: GPU'; echo 'ID 1: GPU'; exit 0; fi\n" +
		"echo burning; echo oops >&2; exit " + exit + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "gpu_burn"), []byte(script), 0o755))
	return dir, calls
}

func TestGPU(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	dir, calls := gpuBurnScript(t, "0")
	out, err := GPU(ctx, GPUOptions{InstallDir: dir, Duration: 30 * time.Second, Memory: "50%", Count: 2}, log)
	require.NoError(t, err)
	assert.Equal(t, "burning", out)
	b, err := os.ReadFile(calls)
	require.NoError(t, err)
	assert.Equal(t, dir+" -l\n"+dir+" -m 50% 30\n", string(b))

	_, err = GPU(ctx, GPUOptions{InstallDir: dir, Duration: time.Second, Memory: "95%", Count: 3}, log)
	var wrong *GPUCountError
	require.ErrorAs(t, err, &wrong)
	assert.Equal(t, GPUCountError{Found: 2, Want: 3}, *wrong)
	assert.Equal(t, "gpu-burn failed to find the correct number of gpus. 2 found but 3 expected.", err.Error())

	dir, _ = gpuBurnScript(t, "1")
	_, err = GPU(ctx, GPUOptions{InstallDir: dir, Duration: time.Second, Memory: "95%"}, log)
	var failed *GPUBurnError
	require.ErrorAs(t, err, &failed)
	assert.Equal(t, "oops", failed.Stderr)

	_, err = GPU(ctx, GPUOptions{InstallDir: t.TempDir(), Duration: time.Second}, log)
	require.ErrorAs(t, err, &failed, "no gpu_burn installed")
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}
