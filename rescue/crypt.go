package rescue

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// Limits and defaults of SHA-crypt (Drepper's specification). libxcrypt,
// which the PAM stack of IPA's ramdisks uses, refuses rounds outside the
// range instead of clamping them: so does goipa, so a hash that would not
// log in on an IPA ramdisk is refused up front.
const (
	defaultRounds = 5000
	minRounds     = 1000
	maxRounds     = 999999999
	maxSaltLen    = 16
)

// cryptAlphabet is crypt's base64 alphabet (not RFC 4648's).
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// HashError says why a string is not a SHA-crypt hash goipa can check.
type HashError struct{ Reason string }

func (e *HashError) Error() string {
	return "not a SHA-256 or SHA-512 crypt hash ($5$ or $6$): " + e.Reason
}

// Hash is a parsed SHA-crypt hash.
type Hash struct {
	ID     string // "5" (SHA-256) or "6" (SHA-512)
	Rounds int
	// RoundsSet records an explicit rounds=N field, which is part of the
	// setting and so of the output.
	RoundsSet bool
	Salt      string
	Sum       string // the encoded digest: 43 characters for $5$, 86 for $6$
}

func (h *Hash) newHash() hash.Hash {
	if h.ID == "6" {
		return sha512.New()
	}
	return sha256.New()
}

func sumLen(id string) int {
	if id == "6" {
		return 86
	}
	return 43
}

// ParseHash parses "$5$[rounds=N$]salt$sum" or the same with "$6$". It
// accepts exactly what Ironic's conductor produces (Python's crypt or
// oslo's crypt_password with a "$5$"/"$6$" salt) and what mkpasswd and
// `openssl passwd -5/-6` print.
func ParseHash(s string) (*Hash, error) {
	var h Hash
	switch {
	case strings.HasPrefix(s, "$5$"):
		h.ID = "5"
	case strings.HasPrefix(s, "$6$"):
		h.ID = "6"
	default:
		return nil, &HashError{"it must start with $5$ or $6$"}
	}
	rest := s[3:]
	h.Rounds = defaultRounds
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		if !found {
			return nil, &HashError{"rounds= has no closing $"}
		}
		n, err := strconv.Atoi(num)
		if err != nil || num == "" || num[0] == '+' || num[0] == '-' || (len(num) > 1 && num[0] == '0') {
			return nil, &HashError{fmt.Sprintf("rounds=%q is not a number", num)}
		}
		if n < minRounds || n > maxRounds {
			return nil, &HashError{fmt.Sprintf("rounds=%d is outside %d..%d", n, minRounds, maxRounds)}
		}
		h.Rounds, h.RoundsSet, rest = n, true, after
	}
	salt, sum, found := strings.Cut(rest, "$")
	if !found {
		return nil, &HashError{"no $ between salt and hash"}
	}
	if len(salt) > maxSaltLen {
		return nil, &HashError{fmt.Sprintf("the salt is %d characters, at most %d", len(salt), maxSaltLen)}
	}
	// Salt bytes end up in a shadow-style line and in logs: keep them to
	// printable characters that cannot split a line or a field.
	for i := 0; i < len(salt); i++ {
		if c := salt[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return nil, &HashError{fmt.Sprintf("the salt has a byte 0x%02x", c)}
		}
	}
	if len(sum) != sumLen(h.ID) {
		return nil, &HashError{fmt.Sprintf("the hash part is %d characters, not %d", len(sum), sumLen(h.ID))}
	}
	for i := 0; i < len(sum); i++ {
		if strings.IndexByte(cryptAlphabet, sum[i]) < 0 {
			return nil, &HashError{fmt.Sprintf("the hash part has %q, outside crypt's alphabet", sum[i])}
		}
	}
	h.Salt, h.Sum = salt, sum
	return &h, nil
}

// String renders the hash as crypt(3) does.
func (h *Hash) String() string {
	var b strings.Builder
	b.WriteString("$" + h.ID + "$")
	if h.RoundsSet {
		fmt.Fprintf(&b, "rounds=%d$", h.Rounds)
	}
	b.WriteString(h.Salt + "$" + h.Sum)
	return b.String()
}

// MaxPasswordLen caps a password's length. SHA-crypt's work grows with
// the square of it (a 32 KiB password took 2 s of CPU), so a longer one
// is refused before it is hashed.
const MaxPasswordLen = 1024

// ErrPasswordTooLong is returned when asked to hash a password over
// MaxPasswordLen bytes.
var ErrPasswordTooLong = fmt.Errorf("rescue: password longer than %d bytes", MaxPasswordLen)

// Verify says whether password matches the hash, in time independent of
// where a wrong password's digest differs. A password over MaxPasswordLen
// bytes matches nothing and is not hashed.
func (h *Hash) Verify(password string) bool {
	if len(password) > MaxPasswordLen {
		return false
	}
	sum := shaCrypt(h, []byte(password))
	return subtle.ConstantTimeCompare([]byte(sum), []byte(h.Sum)) == 1
}

// VerifyPassword parses hash and checks password against it; a hash that
// does not parse matches nothing.
func VerifyPassword(hash, password string) bool {
	h, err := ParseHash(hash)
	if err != nil {
		return false
	}
	return h.Verify(password)
}

// HashSHA256 hashes a plaintext password as IPA does when Ironic sends
// one (hashed=false): SHA-256 crypt, a random 16-character salt, default
// rounds (oslo's crypt_mksalt("SHA-256")).
func HashSHA256(password string) (string, error) {
	return hashWith("5", password)
}

// HashSHA512 is HashSHA256 with SHA-512, what Ironic sends with
// [conductor]rescue_password_hash_algorithm=sha512.
func HashSHA512(password string) (string, error) {
	return hashWith("6", password)
}

func hashWith(id, password string) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", ErrPasswordTooLong
	}
	var raw [maxSaltLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	salt := make([]byte, maxSaltLen)
	for i, c := range raw {
		salt[i] = cryptAlphabet[int(c)%len(cryptAlphabet)]
	}
	h := &Hash{ID: id, Rounds: defaultRounds, Salt: string(salt)}
	h.Sum = shaCrypt(h, []byte(password))
	return h.String(), nil
}

// errShortDigest can only come from a broken hash.Hash.
var errShortDigest = errors.New("rescue: digest shorter than expected")

// shaCrypt computes the encoded digest of Drepper's algorithm (steps
// numbered as in the specification).
func shaCrypt(h *Hash, key []byte) string {
	salt := []byte(h.Salt)
	newH := h.newHash

	// Steps 4-8: digest B = H(key salt key).
	b := newH()
	b.Write(key)
	b.Write(salt)
	b.Write(key)
	sumB := b.Sum(nil)
	size := len(sumB)

	// Steps 1-3, 9-12: digest A.
	a := newH()
	a.Write(key)
	a.Write(salt)
	n := len(key)
	for ; n > size; n -= size {
		a.Write(sumB)
	}
	a.Write(sumB[:n])
	for n := len(key); n > 0; n >>= 1 {
		if n&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(key)
		}
	}
	sumA := a.Sum(nil)

	// Steps 13-16: P, the key's digest stretched to the key's length.
	dp := newH()
	for range len(key) {
		dp.Write(key)
	}
	p := stretch(dp.Sum(nil), len(key))

	// Steps 17-20: S, the salt's digest stretched to the salt's length.
	ds := newH()
	for range 16 + int(sumA[0]) {
		ds.Write(salt)
	}
	s := stretch(ds.Sum(nil), len(salt))

	// Step 21: the rounds.
	c := sumA
	r := newH()
	for i := range h.Rounds {
		r.Reset()
		if i&1 != 0 {
			r.Write(p)
		} else {
			r.Write(c)
		}
		if i%3 != 0 {
			r.Write(s)
		}
		if i%7 != 0 {
			r.Write(p)
		}
		if i&1 != 0 {
			r.Write(c)
		} else {
			r.Write(p)
		}
		c = r.Sum(c[:0])
	}
	if len(c) != size {
		panic(errShortDigest)
	}
	return encode(c, h.ID)
}

func stretch(digest []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out)+len(digest) <= n {
		out = append(out, digest...)
	}
	return append(out, digest[:n-len(out)]...)
}

// The byte order of the final encoding: triples of digest bytes, each
// written as four characters, then the odd bytes left over.
var (
	order256 = [][3]int{{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14}, {15, 25, 5}, {6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}}
	order512 = [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10},
		{53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
)

func encode(d []byte, id string) string {
	var out []byte
	put := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			out = append(out, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	if id == "6" {
		for _, t := range order512 {
			put(d[t[0]], d[t[1]], d[t[2]], 4)
		}
		put(0, 0, d[63], 2)
	} else {
		for _, t := range order256 {
			put(d[t[0]], d[t[1]], d[t[2]], 4)
		}
		put(0, d[31], d[30], 3)
	}
	return string(out)
}
