package rescue

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// serve serves s on a loopback port until the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("the SSH server did not stop within 10 s")
		}
	})
	return ln.Addr().String()
}

func dialWith(s *Server, addr, user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: user, Auth: auth,
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         10 * time.Second,
	})
}

// run runs command over c and returns its output.
func run(t *testing.T, c *ssh.Client, command string) string {
	t.Helper()
	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	b, err := sess.CombinedOutput(command)
	require.NoError(t, err, "output %q", b)
	return string(b)
}

// TestRootLoginWithKeyThenRescueJoins is the debug login of `sshkey=`:
// root with the operator's key gets a shell; a wrong key, root's key for
// another user and passwords are refused; then the rescue account joins
// the same listener and both log in.
func TestRootLoginWithKeyThenRescueJoins(t *testing.T) {
	good, line := newKey(t)
	bad, _ := newKey(t)
	keys, err := ParseAuthorizedKeys(line + " operator@metal3")
	require.NoError(t, err)
	s, err := NewServer(WithShell("/bin/sh"), WithAccount("root", Account{AuthorizedKeys: keys}))
	require.NoError(t, err)
	addr := serve(t, s)

	c, err := dialWith(s, addr, "root", ssh.PublicKeys(good))
	require.NoError(t, err)
	assert.Equal(t, "root 42\n", run(t, c, `echo "$USER $((40+2))"`))
	c.Close()

	for _, r := range []struct {
		name, user string
		auth       ssh.AuthMethod
	}{
		{"wrong key", "root", ssh.PublicKeys(bad)},
		{"root's key as rescue (no rescue account yet)", User, ssh.PublicKeys(good)},
		{"root's key as another user", "admin", ssh.PublicKeys(good)},
		{"a password for root, which has none", "root", ssh.Password("")},
	} {
		_, err := dialWith(s, addr, r.user, r.auth)
		require.Error(t, err, r.name)
		assert.Contains(t, err.Error(), "unable to authenticate", r.name)
	}

	// finalize_rescue: the rescue account joins the running server.
	hash, err := HashSHA512("tenant pw")
	require.NoError(t, err)
	s.SetAccount(User, Account{Password: mustParseHash(t, hash)})
	rc, err := dialWith(s, addr, User, ssh.Password("tenant pw"))
	require.NoError(t, err)
	assert.Equal(t, "rescue\n", run(t, rc, `echo "$USER"`))
	rc.Close()
	_, err = dialWith(s, addr, User, ssh.PublicKeys(good))
	assert.Error(t, err, "root's key logged in as rescue")
	_, err = dialWith(s, addr, User, ssh.Password("tenant p"))
	assert.Error(t, err, "a wrong rescue password logged in")
	// Root still logs in beside it.
	c, err = dialWith(s, addr, "root", ssh.PublicKeys(good))
	require.NoError(t, err)
	assert.Equal(t, "ok\n", run(t, c, "echo ok"))
	c.Close()

	// An empty account removes the user.
	s.SetAccount(User, Account{})
	_, err = dialWith(s, addr, User, ssh.Password("tenant pw"))
	assert.Error(t, err, "a removed account logged in")
}

// TestRootLoginWithRootpwd is `rootpwd=`: root logs in with the password
// whose crypt hash was given, and with no other.
func TestRootLoginWithRootpwd(t *testing.T) {
	for _, hashFn := range []func(string) (string, error){HashSHA512, HashSHA256} {
		hash, err := hashFn("operator pw")
		require.NoError(t, err)
		s, err := NewServer(WithShell("/bin/sh"), WithAccount("root", Account{Password: mustParseHash(t, hash)}))
		require.NoError(t, err)
		addr := serve(t, s)
		c, err := dialWith(s, addr, "root", ssh.Password("operator pw"))
		require.NoError(t, err, hash)
		assert.Equal(t, "root\n", run(t, c, `echo "$USER"`))
		c.Close()
		for _, pw := range []string{"operator p", "operator pw ", ""} {
			_, err := dialWith(s, addr, "root", ssh.Password(pw))
			assert.Error(t, err, "password %q logged in", pw)
		}
		_, err = dialWith(s, addr, User, ssh.Password("operator pw"))
		assert.Error(t, err, "root's password logged in as rescue")
	}
}

// TestAuthTriesCountKeys: keys count towards the tries of a connection
// as passwords do, so a client cannot offer keys without end.
func TestAuthTriesCountKeys(t *testing.T) {
	_, line := newKey(t)
	keys, err := ParseAuthorizedKeys(line)
	require.NoError(t, err)
	s, err := NewServer(WithAccount("root", Account{AuthorizedKeys: keys}))
	require.NoError(t, err)
	addr := serve(t, s)
	var signers []ssh.Signer
	for i := 0; i < maxAuthTries+4; i++ {
		k, _ := newKey(t)
		signers = append(signers, k)
	}
	offered := 0
	_, err = dialWith(s, addr, "root", ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		offered++
		return signers, nil
	}), ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
		offered++
		return "x", nil
	}), 100))
	require.Error(t, err)
	// The key method is one call offering ten keys; then one password
	// at most before the limit: x/crypto/ssh counts each key as a try.
	assert.LessOrEqual(t, offered, 2, "the server took more than %d tries", maxAuthTries)
}
