package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// OCISource reads the disk image blob of an OCI artifact or image:
// oci://registry/repo:tag or oci://registry/repo@sha256:... The blob is
// the single layer, or the one whose title or media type says it is a
// disk image. Credentials come from the docker config (anonymous
// otherwise); the blob's digest is what the download is checked against
// when Ironic gives no checksum.
type OCISource struct {
	URL    string
	Layer  v1.Layer
	Digest v1.Hash
	Size   int64
	// blob fetches the blob over the registry's HTTP API with its token
	// auth, so resumes and parallel ranges work as for any HTTP image.
	blob *HTTPSource
}

func (s *OCISource) String() string { return s.URL }

// Open streams the blob from offset: by a Range request on the blob URL,
// or, where that could not be set up, from the layer, dropping the bytes
// before offset.
func (s *OCISource) Open(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
	if s.blob != nil {
		rc, _, err := s.blob.Open(ctx, offset)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: fetching blob %s: %w", s.URL, s.Digest, err)
		}
		return rc, s.Size, nil
	}
	rc, err := s.Layer.Compressed()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: fetching blob %s: %w", s.URL, s.Digest, err)
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
			rc.Close()
			return nil, 0, fmt.Errorf("%s: skipping to byte %d: %w", s.URL, offset, err)
		}
	}
	return rc, s.Size, nil
}

// OpenRange serves bytes of the blob (RangeSource).
func (s *OCISource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if s.blob == nil {
		return nil, errNoRanges
	}
	return s.blob.OpenRange(ctx, off, n)
}

// diskLayer picks the layer holding the disk image.
func diskLayer(img v1.Image) (v1.Layer, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) == 1 {
		return layers[0], nil
	}
	for i, d := range m.Layers {
		title := strings.ToLower(d.Annotations["org.opencontainers.image.title"])
		mt := strings.ToLower(string(d.MediaType))
		ext := path.Ext(title)
		if ext == ".qcow2" || ext == ".raw" || ext == ".img" || ext == ".zst" || ext == ".gz" || ext == ".xz" ||
			strings.Contains(mt, "disk") || strings.Contains(mt, "qcow2") {
			return layers[i], nil
		}
	}
	return nil, fmt.Errorf("%d layers and none is marked as a disk image (title *.qcow2/*.raw/*.img or a disk media type)", len(layers))
}

// ResolveOCIImage resolves an oci:// URL to its image, for callers that
// want every layer (a bootc container deploy) rather than one disk blob:
// an image index is narrowed to linux and the architecture goipa runs
// on. keychain nil means the docker config's credentials (anonymous
// otherwise). Nothing but the manifest and config is fetched here: the
// layers stream from the registry when they are read.
func ResolveOCIImage(ctx context.Context, rawURL string, client *http.Client, insecure bool, keychain authn.Keychain) (name.Reference, v1.Image, error) {
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	ref, img, _, err := remoteImage(ctx, rawURL, client, insecure, keychain,
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	return ref, img, err
}

// remoteImage parses an oci:// URL and fetches its manifest through
// client's transport (the default one without it), which it returns.
func remoteImage(ctx context.Context, rawURL string, client *http.Client, insecure bool, keychain authn.Keychain, extra ...remote.Option) (name.Reference, v1.Image, http.RoundTripper, error) {
	refText, ok := strings.CutPrefix(rawURL, "oci://")
	if !ok {
		return nil, nil, nil, fmt.Errorf("%q is not an oci:// URL", rawURL)
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(refText, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("OCI reference %q: %w", refText, err)
	}
	ropts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain)}, extra...)
	base := http.DefaultTransport
	if client != nil && client.Transport != nil {
		ropts = append(ropts, remote.WithTransport(client.Transport))
		base = client.Transport
	}
	img, err := remote.Image(ref, ropts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("OCI image %s: %w", ref, err)
	}
	return ref, img, base, nil
}

// ResolveOCI finds the disk image blob of an oci:// URL.
func ResolveOCI(ctx context.Context, rawURL string, client *http.Client, insecure bool) (*OCISource, error) {
	ref, img, base, err := remoteImage(ctx, rawURL, client, insecure, authn.DefaultKeychain)
	if err != nil {
		return nil, err
	}
	layer, err := diskLayer(img)
	if err != nil {
		return nil, fmt.Errorf("OCI image %s: %w", ref, err)
	}
	d, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	size, err := layer.Size()
	if err != nil {
		return nil, err
	}
	src := &OCISource{URL: rawURL, Layer: layer, Digest: d, Size: size}
	repo := ref.Context()
	if auth, err := authn.DefaultKeychain.Resolve(repo.Registry); err == nil {
		if tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)}); err == nil {
			src.blob = &HTTPSource{URL: fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d),
				Client: &http.Client{Transport: tr}}
		}
	}
	return src, nil
}
