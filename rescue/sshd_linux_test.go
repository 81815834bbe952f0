package rescue

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	s, err := NewServer(WithShell("/bin/sh"), WithAccount(User, Account{Password: mustParseHash(t, hash)}))
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

func mustParseHash(t testing.TB, s string) *Hash {
	t.Helper()
	h, err := ParseHash(s)
	require.NoError(t, err)
	return h
}

// startServerWith is startServer with options.
func startServerWith(t *testing.T, opts ...Option) (*Server, string) {
	t.Helper()
	hash, err := HashSHA512("tenant pw")
	require.NoError(t, err)
	s, err := NewServer(append([]Option{WithShell("/bin/sh"), WithAccount(User, Account{Password: mustParseHash(t, hash)})}, opts...)...)
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

// rawConn connects without speaking SSH and reports what the server sent
// first: its version line, or "" when it closed the connection at once.
func rawConn(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server neither greeted nor closed within 5 s")
	}
	c.SetReadDeadline(time.Time{})
	return c, string(buf[:n])
}

func TestSSHLimitsConnectionsNotLoggedIn(t *testing.T) {
	s, addr := startServerWith(t)
	var idle []net.Conn
	for i := 0; i < maxStartups; i++ {
		c, hello := rawConn(t, addr)
		require.True(t, strings.HasPrefix(hello, "SSH-2.0-goipa"), "connection %d: got %q", i, hello)
		idle = append(idle, c)
	}
	// One more than the limit is closed before the server says anything.
	_, hello := rawConn(t, addr)
	assert.Equal(t, "", hello, "a connection past the limit was served")

	// A slot comes back when a client goes: the next one is served.
	idle[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, hello = rawConn(t, addr)
		if hello != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.True(t, strings.HasPrefix(hello, "SSH-2.0-"), "no slot came back after a client left")

	// Logged-in connections do not count: with the idle ones gone, ten
	// logins and more still work.
	for _, c := range idle[1:] {
		c.Close()
	}
	var clients []*ssh.Client
	for i := 0; i < maxStartups+2; i++ {
		var c *ssh.Client
		var err error
		for try := 0; try < 100; try++ { // closed slots come back asynchronously
			if c, err = dial(s, addr, "rescue", "tenant pw"); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, err, "login %d", i)
		clients = append(clients, c)
	}
	for _, c := range clients {
		c.Close()
	}
}

func TestSSHLimitsAuthTriesPerConnection(t *testing.T) {
	s, addr := startServerWith(t)
	tries := 0
	_, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: "rescue",
		Auth: []ssh.AuthMethod{ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
			tries++
			return "wrong", nil
		}), 100)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey()),
		Timeout:         10 * time.Second,
	})
	require.Error(t, err)
	assert.Equal(t, maxAuthTries, tries, "passwords tried on one connection")
}

func TestSSHIdleHandshakeTimesOut(t *testing.T) {
	_, addr := startServerWith(t, WithLoginGraceTime(300*time.Millisecond))
	c, hello := rawConn(t, addr)
	require.True(t, strings.HasPrefix(hello, "SSH-2.0-"), "got %q", hello)
	// Say nothing: the server must hang up.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept an idle handshake open: %v", err)
}

func TestSSHRefusesOverlongPassword(t *testing.T) {
	long := strings.Repeat("p", MaxPasswordLen+1)
	// A hash that the overlong password does match: Verify still refuses it.
	h := &Hash{ID: "6", Rounds: defaultRounds, Salt: "saltsaltsaltsalt"}
	h.Sum = shaCrypt(h, []byte(long))
	assert.False(t, h.Verify(long), "an overlong password was verified")
	maxLen := strings.Repeat("p", MaxPasswordLen)
	h.Sum = shaCrypt(h, []byte(maxLen))
	assert.True(t, h.Verify(maxLen), "a password of exactly the limit")

	_, err := HashSHA256(long)
	assert.ErrorIs(t, err, ErrPasswordTooLong)
	_, err = HashSHA512(long)
	assert.ErrorIs(t, err, ErrPasswordTooLong)

	// Over SSH, against a hash made from the password cut to the limit.
	hash, err := HashSHA512(maxLen)
	require.NoError(t, err)
	s, err := NewServer(WithAccount(User, Account{Password: mustParseHash(t, hash)}))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	_, err = dial(s, ln.Addr().String(), "rescue", long)
	assert.Error(t, err, "an overlong password logged in")
	c, err := dial(s, ln.Addr().String(), "rescue", maxLen)
	require.NoError(t, err)
	c.Close()
}
