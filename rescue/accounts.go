package rescue

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Account is how one user may log in over SSH: with any of its authorized
// public keys, or with a password matching its crypt hash. Either may be
// empty; an account with neither lets nobody in.
type Account struct {
	AuthorizedKeys []ssh.PublicKey
	Password       *Hash
}

func (a Account) empty() bool { return len(a.AuthorizedKeys) == 0 && a.Password == nil }

// ParseAuthorizedKeys reads the public keys of an `sshkey=` kernel
// parameter: what DIB's dynamic-login element writes to root's
// authorized_keys and Metal3's IRONIC_RAMDISK_SSH_KEY holds, one
// authorized_keys line ("ssh-ed25519 AAAA... comment"). The kernel's
// command line has no newlines, so several keys arrive as one line
// ("type key comment type key comment"): a key starts at each word that
// names a key type and is followed by that type's base64 blob; the words
// in between are comments. Options before the type (from="...") are not
// supported: they are refused, never silently dropped.
func ParseAuthorizedKeys(s string) ([]ssh.PublicKey, error) {
	words := strings.Fields(s)
	var keys []ssh.PublicKey
	for i := 0; i < len(words); i++ {
		key, ok := parseKeyAt(words, i)
		if !ok {
			if len(keys) == 0 {
				return nil, fmt.Errorf("%q is not an SSH public key type followed by its key", words[i])
			}
			continue // a comment
		}
		keys = append(keys, key)
		i++
	}
	if len(keys) == 0 {
		return nil, errors.New("no SSH public key")
	}
	return keys, nil
}

// parseKeyAt says whether words[i] and words[i+1] are a key type and a
// key of that type.
func parseKeyAt(words []string, i int) (ssh.PublicKey, bool) {
	if i+1 >= len(words) {
		return nil, false
	}
	blob, err := base64.StdEncoding.DecodeString(words[i+1])
	if err != nil {
		return nil, false
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil || key.Type() != words[i] {
		return nil, false
	}
	return key, true
}
