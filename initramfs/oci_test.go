package initramfs

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPushPullRamdisk(t *testing.T) {
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "goipa.kernel"), filepath.Join(dir, "goipa.initramfs")
	require.NoError(t, os.WriteFile(kernel, bytes.Repeat([]byte("K"), 1<<20), 0o644))
	require.NoError(t, os.WriteFile(initrd, bytes.Repeat([]byte("I"), 3<<20), 0o644))
	ctx := context.Background()
	digestRef, err := Push(ctx, host+"/metal3/goipa-ramdisk:v1", kernel, initrd, true)
	require.NoError(t, err)
	assert.Contains(t, digestRef, "@sha256:")

	for _, ref := range []string{host + "/metal3/goipa-ramdisk:v1", digestRef} {
		out := t.TempDir()
		k, i, err := Pull(ctx, ref, out, true)
		require.NoError(t, err, ref)
		kb, _ := os.ReadFile(k)
		ib, _ := os.ReadFile(i)
		assert.Equal(t, bytes.Repeat([]byte("K"), 1<<20), kb)
		assert.Equal(t, bytes.Repeat([]byte("I"), 3<<20), ib)
		assert.Equal(t, "goipa.initramfs", filepath.Base(i))
	}
	_, _, err = Pull(ctx, host+"/metal3/nothing:v1", t.TempDir(), true)
	assert.Error(t, err)

	// An arm64 ramdisk says so in its config.
	armRef, err := Push(ctx, host+"/metal3/goipa-ramdisk:arm64", kernel, initrd, true, PushArch("arm64"))
	require.NoError(t, err)
	r, err := name.ParseReference(armRef, name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(r)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, "linux/arm64", cf.OS+"/"+cf.Architecture)
	_, i, err := Pull(ctx, armRef, t.TempDir(), true)
	require.NoError(t, err)
	ib, _ := os.ReadFile(i)
	assert.Equal(t, bytes.Repeat([]byte("I"), 3<<20), ib)
}
