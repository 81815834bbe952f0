package image

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
)

// Checksum is the expected digest of the image bytes as downloaded.
type Checksum struct {
	Algo  string // md5, sha256, sha384, sha512
	Value string // lower-case hex
}

// ChecksumMismatchError says the image is not the one Ironic meant.
type ChecksumMismatchError struct {
	Algo, Want, Got string
}

func (e *ChecksumMismatchError) Error() string {
	return fmt.Sprintf("image checksum mismatch: %s expected %s, got %s", e.Algo, e.Want, e.Got)
}

// NewHash returns the hash for the algorithm.
func (c Checksum) NewHash() (hash.Hash, error) {
	switch c.Algo {
	case "md5":
		return md5.New(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum algorithm %q", c.Algo)
}

// ErrUnverifiedRefused answers a checksum of "none": skipping
// verification is for `goipa write-image --checksum none` alone.
var ErrUnverifiedRefused = errors.New(`checksum "none" refused: images are always verified here (only goipa write-image --checksum none writes without verification)`)

var hexRE = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// algoByLength is IPA's rule for a bare `checksum`.
func algoByLength(v string, md5Allowed bool) (string, error) {
	switch len(v) {
	case 128:
		return "sha512", nil
	case 96:
		return "sha384", nil
	case 64:
		return "sha256", nil
	case 32:
		if !md5Allowed {
			return "", errors.New("the image checksum is MD5, which is not allowed here")
		}
		return "md5", nil
	}
	return "", fmt.Errorf("cannot tell the algorithm of a %d-character checksum", len(v))
}

// ChecksumSpec is what Ironic gives: os_hash_algo/os_hash_value, or a
// `checksum` (bare, "algo:value", or a URL to a checksums file).
type ChecksumSpec struct {
	OSHashAlgo, OSHashValue string
	Checksum                string
	MD5Allowed              bool
	ImageURL                string // names the line to pick in a checksums file
}

// Resolve turns the spec into one expected digest, fetching a checksums
// file when the value is a URL.
func (s ChecksumSpec) Resolve(ctx context.Context, client *http.Client) (Checksum, error) {
	if s.OSHashAlgo != "" && s.OSHashValue != "" {
		algo := strings.ToLower(s.OSHashAlgo)
		if algo == "md5" && !s.MD5Allowed {
			return Checksum{}, errors.New("the image checksum is MD5, which is not allowed here")
		}
		if _, err := (Checksum{Algo: algo}).NewHash(); err != nil {
			return Checksum{}, err
		}
		return s.value(ctx, client, algo, s.OSHashValue)
	}
	if s.Checksum == "" {
		return Checksum{}, errors.New("no checksum given for the image")
	}
	if strings.EqualFold(strings.TrimSpace(s.Checksum), "none") {
		// Only the command line may skip verification, and not through
		// the checksum: an image from Ironic is always verified.
		return Checksum{}, ErrUnverifiedRefused
	}
	if a, v, ok := strings.Cut(s.Checksum, ":"); ok && !isURL(s.Checksum) {
		algo := strings.ToLower(a)
		if algo == "md5" && !s.MD5Allowed {
			return Checksum{}, errors.New("the image checksum is MD5, which is not allowed here")
		}
		if _, err := (Checksum{Algo: algo}).NewHash(); err != nil {
			return Checksum{}, err
		}
		return s.value(ctx, client, algo, v)
	}
	return s.value(ctx, client, "", s.Checksum)
}

// value returns the digest, reading it from a URL if it is one; an empty
// algo is decided by the value's length.
func (s ChecksumSpec) value(ctx context.Context, client *http.Client, algo, v string) (Checksum, error) {
	if isURL(v) {
		text, err := fetchText(ctx, client, v)
		if err != nil {
			return Checksum{}, fmt.Errorf("checksum file: %w", err)
		}
		name := ""
		if s.ImageURL != "" {
			name = path.Base(strings.SplitN(s.ImageURL, "?", 2)[0])
		}
		if v, err = ParseChecksumFile(text, name); err != nil {
			return Checksum{}, err
		}
	}
	v = strings.ToLower(strings.TrimSpace(v))
	if !hexRE.MatchString(v) {
		return Checksum{}, fmt.Errorf("checksum %q is not hexadecimal", v)
	}
	if algo == "" {
		a, err := algoByLength(v, s.MD5Allowed)
		if err != nil {
			return Checksum{}, err
		}
		algo = a
	}
	return Checksum{Algo: algo, Value: v}, nil
}

func fetchText(ctx context.Context, client *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", &HTTPStatusError{URL: u, Status: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxChecksumFile+1))
	if err == nil && len(b) > maxChecksumFile {
		return "", &LimitError{What: "checksum file", Limit: maxChecksumFile}
	}
	return string(b), err
}

// maxChecksumFile bounds a checksums file: real ones list a few hundred
// images in a few KiB.
const maxChecksumFile = 1 << 20

// digestLen is the hex length of each algorithm's digest, by the names
// BSD-style lines use (lower-cased).
var digestLen = map[string]int{"md5": 32, "sha256": 64, "sha384": 96, "sha512": 128}

// isDigest says whether v is hex of a digest's length: algo's when it is
// a known algorithm, else any of them.
func isDigest(v, algo string) bool {
	if !hexRE.MatchString(v) {
		return false
	}
	if n, ok := digestLen[algo]; ok {
		return len(v) == n
	}
	for _, n := range digestLen {
		if len(v) == n {
			return true
		}
	}
	return false
}

// ParseChecksumFile picks the digest for file name out of a checksums
// file: a lone digest, sha256sum-style "digest  name" (or "digest *name")
// lines, or BSD-style "SHA256 (name) = digest" lines.
func ParseChecksumFile(text, name string) (string, error) {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 1 && !strings.ContainsAny(lines[0], " \t") {
		if !isDigest(lines[0], "") {
			return "", fmt.Errorf("checksum file holds %q, not a digest", lines[0])
		}
		return lines[0], nil
	}
	for _, l := range lines {
		if open := strings.Index(l, "("); open >= 0 {
			if close := strings.Index(l, ") = "); close > open && l[open+1:close] == name {
				v := strings.TrimSpace(l[close+4:])
				tag := strings.ToLower(strings.TrimSpace(l[:open]))
				if !isDigest(v, tag) {
					return "", fmt.Errorf("checksum file line for %q holds %q, not a %s digest", name, v, l[:open])
				}
				return v, nil
			}
		}
		fields := strings.Fields(l)
		if len(fields) >= 2 && strings.TrimPrefix(fields[len(fields)-1], "*") == name && isDigest(fields[0], "") {
			return fields[0], nil
		}
	}
	return "", fmt.Errorf("checksum file has no line for %q", name)
}
