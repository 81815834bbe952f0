package netdevsim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/initramfs"
	"github.com/goipa/goipa/internal/testenv"
)

// Module builds netdevsim.ko for the tests' kernel into an empty cache,
// with that kernel's vermagic and psample as its one dependency, and
// reuses it the second time; another module at the cache path is
// replaced, not used.
func TestModuleBuildsAndIsReused(t *testing.T) {
	testenv.NeedCommands(t, "apt-get", "apt-cache", "dpkg-deb", "dpkg-query", "tar", "make", "gcc", "strip")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pkg, err := initramfs.DebianKernelPackage(ctx, "linux-image-cloud-amd64", "amd64")
	require.NoError(t, err)
	k, err := initramfs.FetchDebianKernel(ctx, filepath.Join(initramfs.CacheDir(), "kernels"), pkg)
	require.NoError(t, err)
	want, err := initramfs.KernelVermagic(k)
	require.NoError(t, err)

	cache := t.TempDir()
	// Something else at the cache path (a module, but not netdevsim).
	stale := CachePath(cache, k.Version)
	require.NoError(t, os.MkdirAll(filepath.Dir(stale), 0o755))
	psample, err := filepath.Glob(filepath.Join(k.ModulesDir, "kernel/net/psample/psample.ko"))
	require.NoError(t, err)
	require.Len(t, psample, 1)
	b, err := os.ReadFile(psample[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(stale, b, 0o644))

	start := time.Now()
	p, err := Module(ctx, cache, k)
	require.NoError(t, err)
	t.Logf("netdevsim built for %s in %.1f s", k.Version, time.Since(start).Seconds())
	assert.Equal(t, stale, p)
	m, err := initramfs.ModuleInfo(p)
	require.NoError(t, err)
	assert.Equal(t, "netdevsim", m.Name)
	assert.Equal(t, want, m.Vermagic)
	assert.Equal(t, []string{"psample"}, m.Deps)
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Less(t, st.Size(), int64(1<<20), "debug information stripped")

	again, err := Module(ctx, cache, k)
	require.NoError(t, err)
	st2, err := os.Stat(again)
	require.NoError(t, err)
	assert.Equal(t, p, again)
	assert.Equal(t, st.ModTime(), st2.ModTime(), "the cached module is reused")
	ents, _ := os.ReadDir(filepath.Dir(p))
	assert.Len(t, ents, 1, "no temporary file left in the cache")
}
