package image

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/internal/testenv"
)

func pushDisk(t *testing.T, host, repo string, layers ...mutate.Addendum) v1.Hash {
	t.Helper()
	img, err := mutate.Append(empty.Image, layers...)
	require.NoError(t, err)
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return d
}

// TestOCIDiskImage pulls a disk image from a real (in-process) OCI
// registry by tag and by digest, checks it against the blob digest, and
// picks the disk layer among several by its title.
func TestOCIDiskImage(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	disk := randomImage(t, 6<<20)
	layer := static.NewLayer(disk, types.MediaType("application/vnd.goipa.disk.raw"))
	pushDisk(t, host, "images/node:v1", mutate.Addendum{Layer: layer})
	readme := static.NewLayer([]byte("how to use this image"), types.MediaType("text/plain"))
	digest := pushDisk(t, host, "images/multi:v1",
		mutate.Addendum{Layer: readme, Annotations: map[string]string{"org.opencontainers.image.title": "README.md"}},
		mutate.Addendum{Layer: layer, Annotations: map[string]string{"org.opencontainers.image.title": "node.raw"}})

	for _, url := range []string{"oci://" + host + "/images/node:v1", "oci://" + host + "/images/multi@" + digest.String()} {
		dev := loopDev(t, 8<<20)
		res, err := Write(context.Background(), Request{URLs: []string{url}, Device: dev, HTTP: HTTPOptions{Insecure: true}})
		require.NoError(t, err, url)
		assert.Equal(t, "sha256", res.Algo)
		assert.Equal(t, shaHex(disk), res.Digest, "verified against the blob digest")
		assert.Equal(t, shaHex(disk), shaHex(readBack(t, dev, 0, int64(len(disk)))))
	}

	dev := loopDev(t, 8<<20)
	_, err := Write(context.Background(), Request{URLs: []string{"oci://" + host + "/images/node:v1"}, Device: dev,
		HTTP: HTTPOptions{Insecure: true}, Checksum: ChecksumSpec{OSHashAlgo: "sha256", OSHashValue: strings.Repeat("1", 64)}})
	var cm *ChecksumMismatchError
	assert.ErrorAs(t, err, &cm, "an explicit checksum still wins over the digest")

	pushDisk(t, host, "images/ambiguous:v1", mutate.Addendum{Layer: readme}, mutate.Addendum{Layer: static.NewLayer([]byte("x"), types.MediaType("text/plain"))})
	_, err = Write(context.Background(), Request{URLs: []string{"oci://" + host + "/images/ambiguous:v1"}, Device: dev, HTTP: HTTPOptions{Insecure: true}})
	assert.ErrorContains(t, err, "none is marked as a disk image")
	_, err = Write(context.Background(), Request{URLs: []string{"oci://" + host + "/images/missing:v1"}, Device: dev, HTTP: HTTPOptions{Insecure: true}})
	assert.ErrorContains(t, err, "images/missing")
}
