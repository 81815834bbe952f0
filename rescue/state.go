package rescue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// InvalidPasswordError is a rescue password no login could ever match:
// a "hash" that is none, or a plaintext password longer than the SSH
// server takes. IPA stores whatever it gets; refusing it keeps the
// tenant from being locked out.
type InvalidPasswordError struct{ Err error }

func (e *InvalidPasswordError) Error() string { return "rescue_password: " + e.Err.Error() }

func (e *InvalidPasswordError) Unwrap() error { return e.Err }

// LoginHash is the crypt hash a rescue login checks, from what Ironic's
// finalize_rescue sends: the password itself when hashed (once checked,
// in its canonical form), else its SHA-256 crypt as IPA makes it.
func LoginHash(password string, hashed bool) (string, error) {
	if hashed {
		h, err := ParseHash(password)
		if err != nil {
			return "", &InvalidPasswordError{Err: err}
		}
		return h.String(), nil
	}
	hash, err := HashSHA256(password)
	if errors.Is(err, ErrPasswordTooLong) {
		return "", &InvalidPasswordError{Err: err}
	}
	if err != nil {
		return "", fmt.Errorf("hashing the rescue password: %w", err)
	}
	return hash, nil
}

// StorePassword writes hash to path, where IPA keeps it (DIB's
// ironic-agent element makes the `rescue` user from that file). The
// file is the tenant's credential: only root reads it, it is replaced
// whole, and a failed write is an error in IPA's words.
func StorePassword(path, hash string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return storeError(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(hash), 0o600); err != nil {
		return storeError(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return storeError(err)
	}
	return nil
}

func storeError(err error) error {
	return fmt.Errorf("rescue operation failed when writing the hashed rescue password to the password file: %w", err)
}
