package initramfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the ramdisk artifact's layers; the titles are the file
// names a pull writes.
const (
	KernelMediaType    = types.MediaType("application/vnd.goipa.kernel")
	InitramfsMediaType = types.MediaType("application/vnd.goipa.initramfs")
	titleAnnotation    = "org.opencontainers.image.title"
)

func refOpts(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// PushOption changes the pushed artifact.
type PushOption func(*v1.ConfigFile)

// PushArch records the ramdisk's architecture (amd64, arm64) in the
// artifact's config, as an image's platform, so an arm64 ramdisk is told
// apart from an amd64 one without pulling it.
func PushArch(arch string) PushOption {
	return func(c *v1.ConfigFile) { c.OS, c.Architecture = "linux", arch }
}

// Push uploads the kernel and initramfs as one OCI artifact, so a Metal3
// deployment can fetch its ramdisk from the registry it already runs.
// It returns the digest reference.
func Push(ctx context.Context, ref, kernel, initrd string, insecure bool, opts ...PushOption) (string, error) {
	r, err := name.ParseReference(ref, refOpts(insecure)...)
	if err != nil {
		return "", err
	}
	var adds []mutate.Addendum
	for _, f := range []struct {
		path string
		mt   types.MediaType
	}{{kernel, KernelMediaType}, {initrd, InitramfsMediaType}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return "", err
		}
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(b, f.mt),
			Annotations: map[string]string{titleAnnotation: filepath.Base(f.path)}})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return "", err
	}
	if len(opts) > 0 {
		cf, err := img.ConfigFile()
		if err != nil {
			return "", err
		}
		cf = cf.DeepCopy()
		for _, o := range opts {
			o(cf)
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return "", err
		}
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("pushing %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

// Pull fetches a ramdisk artifact by tag or digest into dir and returns
// the kernel and initramfs paths; every blob is checked against its digest.
func Pull(ctx context.Context, ref, dir string, insecure bool) (kernel, initrd string, err error) {
	r, err := name.ParseReference(ref, refOpts(insecure)...)
	if err != nil {
		return "", "", err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return "", "", fmt.Errorf("pulling %s: %w", r, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return "", "", err
	}
	for _, d := range m.Layers {
		var dst *string
		switch d.MediaType {
		case KernelMediaType:
			dst = &kernel
		case InitramfsMediaType:
			dst = &initrd
		default:
			continue
		}
		title := filepath.Base(d.Annotations[titleAnnotation])
		if title == "." || title == "/" || title == "" {
			title = string(d.MediaType[len("application/vnd.goipa."):])
		}
		p := filepath.Join(dir, title)
		if err := saveLayer(img, d.Digest, p); err != nil {
			return "", "", err
		}
		*dst = p
	}
	if kernel == "" || initrd == "" {
		return "", "", fmt.Errorf("%s is not a goipa ramdisk artifact (no kernel or initramfs layer)", r)
	}
	return kernel, initrd, nil
}

func saveLayer(img v1.Image, d v1.Hash, path string) error {
	l, err := img.LayerByDigest(d)
	if err != nil {
		return err
	}
	rc, err := l.Compressed() // verified against d as it is read
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
