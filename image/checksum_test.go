package image

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseChecksumFile(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct{ text, name, want string }{
		{sha + "\n", "x.img", sha},
		{"# comment\n" + sha + "  other.img\n" + strings.Repeat("cd", 32) + "  x.img\n", "x.img", strings.Repeat("cd", 32)},
		{sha + " *x.img\n" + strings.Repeat("ef", 32) + " y.img", "x.img", sha},
		{"SHA256 (x.img) = " + sha + "\nSHA256 (y.img) = 00", "x.img", sha},
	} {
		got, err := ParseChecksumFile(tc.text, tc.name)
		require.NoError(t, err, tc.text)
		assert.Equal(t, tc.want, got)
	}
	_, err := ParseChecksumFile(sha+"  other.img\n"+sha+"  more.img", "x.img")
	assert.ErrorContains(t, err, `no line for "x.img"`)
	_, err = ParseChecksumFile("nothex", "x.img")
	assert.Error(t, err)
	// A BSD-style line holds hex of its algorithm's length, nothing else.
	for _, text := range []string{
		"SHA256 (x.img) = " + strings.Repeat("zz", 32),
		"SHA256 (x.img) = " + sha + " trailing",
		"SHA512 (x.img) = " + sha,
		"SHA256 (x.img) = 00",
	} {
		_, err := ParseChecksumFile(text, "x.img")
		assert.ErrorContains(t, err, "not a", text)
	}
}

func TestResolveChecksum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/404" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/huge" {
			// The line sought after more than the limit of others.
			for range 20000 {
				w.Write([]byte(strings.Repeat("cc", 32) + "  another.img\n"))
			}
		}
		w.Write([]byte(strings.Repeat("aa", 64) + "  disk.img\n" + strings.Repeat("bb", 64) + "  other.img\n"))
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		spec ChecksumSpec
		algo string
		err  string
	}{
		{ChecksumSpec{OSHashAlgo: "sha512", OSHashValue: strings.Repeat("A", 128)}, "sha512", ""},
		{ChecksumSpec{OSHashAlgo: "sha256", OSHashValue: srv.URL + "/SUMS", ImageURL: "http://x/disk.img"}, "sha256", ""},
		{ChecksumSpec{Checksum: strings.Repeat("a", 64)}, "sha256", ""},
		{ChecksumSpec{Checksum: strings.Repeat("a", 96)}, "sha384", ""},
		{ChecksumSpec{Checksum: "sha256:" + strings.Repeat("a", 64)}, "sha256", ""},
		{ChecksumSpec{Checksum: strings.Repeat("a", 32), MD5Allowed: true}, "md5", ""},
		{ChecksumSpec{Checksum: strings.Repeat("a", 32)}, "", "MD5"},
		{ChecksumSpec{Checksum: srv.URL + "/SUMS", ImageURL: "http://x/disk.img?temp=1"}, "sha512", ""},
		{ChecksumSpec{Checksum: srv.URL + "/SUMS", ImageURL: "http://x/missing.img"}, "", "no line"},
		{ChecksumSpec{Checksum: srv.URL + "/404", ImageURL: "http://x/disk.img"}, "", "checksum file"},
		{ChecksumSpec{Checksum: srv.URL + "/huge", ImageURL: "http://x/disk.img"}, "", "checksum file is above goipa's limit of 1 MiB"},
		{ChecksumSpec{OSHashAlgo: "crc32", OSHashValue: "abcd"}, "", "unsupported"},
		{ChecksumSpec{Checksum: "xyz"}, "", "hexadecimal"},
		{ChecksumSpec{}, "", "no checksum"},
	} {
		c, err := tc.spec.Resolve(ctx, http.DefaultClient)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, "%+v", tc.spec)
			continue
		}
		require.NoError(t, err, "%+v", tc.spec)
		assert.Equal(t, tc.algo, c.Algo)
		assert.Equal(t, strings.ToLower(c.Value), c.Value)
	}
}

func FuzzParseChecksumFile(f *testing.F) {
	f.Add(strings.Repeat("ab", 32)+"  x.img\n", "x.img")
	f.Add("SHA256 (x.img) = 00ff\n", "x.img")
	f.Add("SHA256 (x.img) = "+strings.Repeat("0f", 32)+"\n", "x.img")
	f.Add("MD5 (x.img) = "+strings.Repeat("0f", 32)+"\n", "x.img")
	f.Add("SHA256 (x.img) = zz\n", "x.img")
	f.Add(strings.Repeat("a", 128), "")
	f.Add("(", "")
	f.Fuzz(func(t *testing.T, text, name string) {
		got, err := ParseChecksumFile(text, name)
		if err != nil {
			return
		}
		if !hexRE.MatchString(got) {
			t.Fatalf("returned a non-hex digest %q", got)
		}
		switch len(got) {
		case 32, 64, 96, 128:
		default:
			t.Fatalf("returned %q, of no digest's length", got)
		}
	})
}
