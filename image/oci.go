package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
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

// OCIImage is an image ResolveOCIImage found, for callers that want
// every layer (a bootc container deploy) rather than one disk blob.
type OCIImage struct {
	URL   string
	Ref   name.Reference
	Image v1.Image
	// blobs carries the registry's token auth over the caller's
	// transport; nil where it could not be set up (the layers are then
	// read through go-containerregistry alone, without resume).
	blobs *http.Client
}

// ResolveOCIImage resolves an oci:// URL to its image: an image index is
// narrowed to linux and the architecture goipa runs on. keychain nil
// means the docker config's credentials (anonymous otherwise). Nothing
// but the manifest and config is fetched here.
func ResolveOCIImage(ctx context.Context, rawURL string, client *http.Client, insecure bool, keychain authn.Keychain) (*OCIImage, error) {
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	ref, img, base, err := remoteImage(ctx, rawURL, client, insecure, keychain,
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, err
	}
	return &OCIImage{URL: rawURL, Ref: ref, Image: img, blobs: blobClient(ctx, ref, keychain, base)}, nil
}

// Layers are the image's layer blobs, bottom first, each an OCISource
// fetched over the registry's HTTP API as ResolveOCI's disk blob is, so
// that a broken download resumes where it broke (OpenVerified).
func (o *OCIImage) Layers() ([]*OCISource, error) {
	layers, err := o.Image.Layers()
	if err != nil {
		return nil, fmt.Errorf("OCI image %s: %w", o.Ref, err)
	}
	out := make([]*OCISource, 0, len(layers))
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		src := &OCISource{URL: o.URL, Layer: l, Digest: d, Size: size}
		if o.blobs != nil {
			src.blob = &HTTPSource{URL: blobURL(o.Ref, d), Client: o.blobs}
		}
		out = append(out, src)
	}
	return out, nil
}

// OpenVerified reads src from its start to its end, reconnecting from
// the last byte received when the connection breaks (as image writes
// do), and checks what it read against the sha256 digest and size: a
// mismatch comes back from Read in place of io.EOF, so a reader that
// reads to the end never takes a tampered or truncated blob as whole.
func OpenVerified(ctx context.Context, src Source, retry Retry, digest v1.Hash, size int64, onRetry func(error)) (io.ReadCloser, error) {
	if digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s: digest algorithm %q: want sha256", src, digest.Algorithm)
	}
	rr, err := newResumingReader(ctx, src, retry, onRetry)
	if err != nil {
		return nil, err
	}
	return &verifyingReader{r: rr, h: sha256.New(), digest: digest, size: size}, nil
}

type verifyingReader struct {
	r      io.ReadCloser
	h      hash.Hash
	n      int64
	digest v1.Hash
	size   int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if v.size >= 0 && v.n != v.size {
			return n, fmt.Errorf("blob %s: %d bytes, want %d", v.digest, v.n, v.size)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.digest.Hex {
			return n, fmt.Errorf("blob %s: sha256 of what came is %s", v.digest, got)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// blobClient is an HTTP client with the registry's token auth for
// pulling from ref's repository, or nil.
func blobClient(ctx context.Context, ref name.Reference, keychain authn.Keychain, base http.RoundTripper) *http.Client {
	repo := ref.Context()
	auth, err := keychain.Resolve(repo.Registry)
	if err != nil {
		return nil
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil
	}
	return &http.Client{Transport: tr}
}

func blobURL(ref name.Reference, d v1.Hash) string {
	repo := ref.Context()
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
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
	if c := blobClient(ctx, ref, authn.DefaultKeychain, base); c != nil {
		src.blob = &HTTPSource{URL: blobURL(ref, d), Client: c}
	}
	return src, nil
}
