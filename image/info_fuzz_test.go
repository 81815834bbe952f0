package image

import (
	"encoding/json"
	"testing"
)

// FuzzParseInfo: any JSON object as image_info is validated without
// a panic, and what is accepted has what the image path relies on.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		`{"id": "img", "urls": ["http://x/img"], "os_hash_algo": "sha256", "os_hash_value": "abc"}`,
		`{"id": "img", "urls": ["http://x/img"], "checksum": "0123456789abcdef0123456789abcdef"}`,
		`{"id": "img", "urls": ["http://x/img"], "checksum": "https://x/SHA256SUMS", "image_type": "partition", "root_mb": "10", "swap_mb": 1e300, "ephemeral_mb": -5, "preserve_ephemeral": "yes", "proxies": {"http": "http://p"}, "stream_raw_images": "off"}`,
		`{"id": 5, "urls": "http://x", "checksum": ""}`,
		`{"id": "img", "urls": [null, 1, ""], "os_hash_algo": "sha256"}`,
		`{}`,
	} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, md5 bool) {
		var raw map[string]any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		ii, err := ParseInfo(raw, md5)
		if err != nil {
			if _, ok := err.(*InvalidInfoError); !ok {
				t.Fatalf("refusal is not an InvalidInfoError: %v", err)
			}
			return
		}
		if ii.ID == "" || len(ii.URLs) == 0 {
			t.Fatalf("accepted image_info without id or urls: %s", data)
		}
		for _, u := range ii.URLs {
			if u == "" {
				t.Fatalf("accepted an empty URL: %s", data)
			}
		}
		if ii.OSHashAlgo == "" && ii.Checksum == "" {
			t.Fatalf("accepted image_info without a checksum: %s", data)
		}
		if !md5 && len(ii.Checksum) == 32 && ii.OSHashAlgo == "" {
			t.Fatalf("accepted an MD5 checksum with MD5 disabled: %s", data)
		}
	})
}
