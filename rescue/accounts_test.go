package rescue

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// newKey makes an ed25519 key pair and its authorized_keys line (without
// the newline).
func newKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func TestParseAuthorizedKeys(t *testing.T) {
	k1, line1 := newKey(t)
	k2, line2 := newKey(t)
	blob1 := strings.Fields(line1)[1]
	for _, c := range []struct {
		name, value string
		want        []ssh.PublicKey
		err         string
	}{
		{"one key", line1, []ssh.PublicKey{k1.PublicKey()}, ""},
		{"with a comment", line1 + " operator@metal3", []ssh.PublicKey{k1.PublicKey()}, ""},
		{"comment of several words", line1 + " my laptop key", []ssh.PublicKey{k1.PublicKey()}, ""},
		{"two keys with comments", line1 + " a@b " + line2 + " c d", []ssh.PublicKey{k1.PublicKey(), k2.PublicKey()}, ""},
		{"two keys without comments", line1 + " " + line2, []ssh.PublicKey{k1.PublicKey(), k2.PublicKey()}, ""},
		{"spaces around", "  " + line1 + "\t", []ssh.PublicKey{k1.PublicKey()}, ""},
		{"empty", "", nil, "no SSH public key"},
		{"only the type (unquoted on the kernel command line)", "ssh-ed25519", nil, "not an SSH public key"},
		{"type does not match the blob", "ssh-rsa " + blob1, nil, "not an SSH public key"},
		{"bad base64", "ssh-ed25519 !!!", nil, "not an SSH public key"},
		{"options first", `from="10.0.0.1" ` + line1, nil, "not an SSH public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseAuthorizedKeys(c.value)
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(c.want))
			for i := range got {
				assert.Equal(t, c.want[i].Marshal(), got[i].Marshal(), "key %d", i)
			}
		})
	}
}

// FuzzParseAuthorizedKeys: any kernel parameter value parses or is
// refused without a panic, and what parses is at least one key whose
// authorized_keys line parses back to the same key.
func FuzzParseAuthorizedKeys(f *testing.F) {
	_, line := newKey(f)
	f.Add(line)
	f.Add(line + " a@b " + line)
	f.Add("ssh-ed25519")
	f.Add("ssh-rsa AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ParseAuthorizedKeys(s)
		if err != nil {
			assert.Empty(t, keys)
			return
		}
		require.NotEmpty(t, keys)
		for _, k := range keys {
			back, err := ParseAuthorizedKeys(string(ssh.MarshalAuthorizedKey(k)))
			require.NoError(t, err)
			require.Len(t, back, 1)
			assert.Equal(t, k.Marshal(), back[0].Marshal())
		}
	})
}
