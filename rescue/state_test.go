package rescue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoginHash(t *testing.T) {
	sha512, err := HashSHA512("tenant pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		password string
		hashed   bool
		check    func(string) bool
		invalid  string
	}{
		{name: "a hash is kept", password: sha512, hashed: true, check: func(h string) bool { return h == sha512 }},
		{name: "plaintext: SHA-256 crypt", password: "plain pw", check: func(h string) bool { return strings.HasPrefix(h, "$5$") && VerifyPassword(h, "plain pw") }},
		{name: "no hash", password: "not a hash", hashed: true, invalid: "must start with $5$ or $6$"},
		{name: "MD5 crypt", password: "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", hashed: true, invalid: "must start with $5$ or $6$"},
		{name: "too few rounds", password: "$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", hashed: true, invalid: "outside 1000"},
		{name: "plaintext too long", password: strings.Repeat("p", MaxPasswordLen+1), invalid: "longer than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := LoginHash(tc.password, tc.hashed)
			if tc.invalid != "" {
				var ie *InvalidPasswordError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.invalid) || !strings.HasPrefix(err.Error(), "rescue_password: ") {
					t.Fatalf("LoginHash = %q, %v; want an InvalidPasswordError saying %q", h, err, tc.invalid)
				}
				return
			}
			if err != nil || !tc.check(h) {
				t.Fatalf("LoginHash = %q, %v", h, err)
			}
		})
	}
}

func TestStorePassword(t *testing.T) {
	dir := t.TempDir()
	blocked := filepath.Join(dir, "file")
	os.WriteFile(blocked, nil, 0o644)
	for _, tc := range []struct {
		name    string
		path    string
		wantErr bool
	}{
		{name: "made with its directory", path: filepath.Join(dir, "etc", "ipa-rescue-config", "ipa-rescue-password")},
		{name: "replaced", path: filepath.Join(dir, "etc", "ipa-rescue-config", "ipa-rescue-password")},
		{name: "a file where the directory should be", path: filepath.Join(blocked, "pw"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := StorePassword(tc.path, "$5$salt$"+tc.name)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "rescue operation failed when writing the hashed rescue password") {
					t.Fatalf("StorePassword: %v, want IPA's error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(tc.path)
			st, _ := os.Stat(tc.path)
			if string(b) != "$5$salt$"+tc.name || st.Mode().Perm() != 0o600 {
				t.Fatalf("stored %q with mode %v", b, st.Mode().Perm())
			}
			if _, err := os.Stat(tc.path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the temporary file is left: %v", err)
			}
		})
	}
}
