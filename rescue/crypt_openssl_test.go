package rescue

import (
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/goipa/goipa/internal/testenv"
)

// TestCryptAgainstOpenSSL: random passwords (1-90 printable bytes) and
// salts (0-16 characters; none lets openssl pick its own) hashed by an
// independent implementation, `openssl passwd -5/-6`, verify here.
func TestCryptAgainstOpenSSL(t *testing.T) {
	testenv.NeedCommands(t, "openssl")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		pw := make([]byte, rng.IntN(90)+1)
		for j := range pw {
			pw[j] = byte(rng.IntN(94) + 33)
		}
		salt := make([]byte, rng.IntN(17))
		for j := range salt {
			salt[j] = cryptAlphabet[rng.IntN(len(cryptAlphabet))]
		}
		args := []string{"passwd", []string{"-5", "-6"}[i%2], "-stdin"}
		if len(salt) > 0 {
			args = append(args, "-salt", string(salt))
		}
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = strings.NewReader(string(pw) + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		hash := strings.TrimSpace(string(out))
		if !VerifyPassword(hash, string(pw)) {
			t.Fatalf("openssl's %s does not verify %q", hash, pw)
		}
		if VerifyPassword(hash, string(pw)+"x") {
			t.Fatalf("%s verifies a wrong password", hash)
		}
	}
}
