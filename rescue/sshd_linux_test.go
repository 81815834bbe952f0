package rescue

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// startServer serves SSH on loopback with the password "tenant pw".
func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	hash, err := HashSHA512("tenant pw")
	require.NoError(t, err)
	s, err := NewServer(hash, WithShell("/bin/sh"))
	require.NoError(t, err)
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
	return s, ln.Addr().String()
}

func dial(s *Server, addr, user, password string) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         10 * time.Second,
	})
}

func TestSSHExec(t *testing.T) {
	s, addr := startServer(t)
	c, err := dial(s, addr, "rescue", "tenant pw")
	require.NoError(t, err)
	defer c.Close()

	sess, err := c.NewSession()
	require.NoError(t, err)
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errOut
	sess.Stdin = strings.NewReader("from stdin\n")
	require.NoError(t, sess.Setenv("GREETING", "hello"))
	err = sess.Run(`echo "$GREETING $USER"; read line; echo "got $line"; echo oops >&2; exit 3`)
	var ee *ssh.ExitError
	require.True(t, errors.As(err, &ee), "want the exit status, got %v", err)
	assert.Equal(t, 3, ee.ExitStatus())
	assert.Equal(t, "hello rescue\ngot from stdin\n", out.String())
	assert.Equal(t, "oops\n", errOut.String())

	// A second session on the same connection.
	sess, err = c.NewSession()
	require.NoError(t, err)
	b, err := sess.Output("echo again")
	require.NoError(t, err)
	assert.Equal(t, "again\n", string(b))
}

func TestSSHShellWithPTY(t *testing.T) {
	s, addr := startServer(t)
	c, err := dial(s, addr, "rescue", "tenant pw")
	require.NoError(t, err)
	defer c.Close()
	sess, err := c.NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.RequestPty("xterm", 40, 100, ssh.TerminalModes{ssh.ECHO: 1}))
	stdin, err := sess.StdinPipe()
	require.NoError(t, err)
	var out bytes.Buffer
	sess.Stdout = &out
	require.NoError(t, sess.Shell())
	// The arithmetic proves a shell ran it (the echoed input has no 42);
	// stty size proves the PTY got the client's window.
	_, err = stdin.Write([]byte("echo pty-$((40+2)); stty size; tty; exit 5\n"))
	require.NoError(t, err)
	err = sess.Wait()
	var ee *ssh.ExitError
	require.True(t, errors.As(err, &ee), "want the exit status, got %v (output %q)", err, out.String())
	assert.Equal(t, 5, ee.ExitStatus())
	assert.Contains(t, out.String(), "pty-42")
	assert.Contains(t, out.String(), "40 100")
	assert.Contains(t, out.String(), "/dev/pts/")
}

func TestSSHRefusesWrongPasswordAndUser(t *testing.T) {
	s, addr := startServer(t)
	for _, c := range []struct{ user, password string }{
		{"rescue", "tenant p"},
		{"rescue", ""},
		{"root", "tenant pw"},
	} {
		start := time.Now()
		_, err := dial(s, addr, c.user, c.password)
		require.Error(t, err, "%s/%q logged in", c.user, c.password)
		assert.Contains(t, err.Error(), "unable to authenticate")
		assert.GreaterOrEqual(t, time.Since(start), failedLoginDelay, "a wrong password is answered at once")
	}
}

func TestNewServerRefusesBadHash(t *testing.T) {
	_, err := NewServer("plaintext")
	var he *HashError
	assert.ErrorAs(t, err, &he)
}
