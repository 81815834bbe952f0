package boot

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// loginOnPTY runs one login on a fresh PTY and returns what the terminal
// showed after the answers were typed.
func loginOnPTY(t *testing.T, answers ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	defer ptmx.Close()
	// Held open to the end: with no slave open the master reads EIO.
	defer tty.Close()
	name := tty.Name()

	verify := func(user, password string) bool { return user == "rescue" && password == "s3cret" }
	done := make(chan error, 1)
	go func() {
		done <- loginOnce(context.Background(), slog.New(slog.DiscardHandler), name, "/bin/sh", verify)
	}()
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	shown := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitOutput := func(s string) {
		require.Eventually(t, func() bool { return strings.Contains(shown(), s) }, 10*time.Second, 10*time.Millisecond,
			"no %q on the terminal", s)
	}
	waitOutput("login: ")
	for i, a := range answers {
		if i == 1 {
			waitOutput("Password: ")
			// The password is typed once echo is off: wait for it.
			require.Eventually(t, func() bool {
				tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
				return err == nil && tio.Lflag&unix.ECHO == 0
			}, 5*time.Second, 10*time.Millisecond)
		}
		_, err := io.WriteString(ptmx, a+"\n")
		require.NoError(t, err)
	}
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("the login did not end; the terminal shows %q", shown())
	}
	time.Sleep(100 * time.Millisecond)
	return shown()
}

func TestConsoleLoginGivesTheShell(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no PTYs here")
	}
	out := loginOnPTY(t, "rescue", "s3cret", "echo shell-$((40+2)) $USER; exit")
	assert.Contains(t, out, LoginBanner)
	assert.Contains(t, out, "shell-42 rescue", "the shell ran the command")
	assert.NotContains(t, out, "s3cret", "the password was echoed")
}

func TestConsoleLoginRefusesWrongPassword(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no PTYs here")
	}
	out := loginOnPTY(t, "rescue", "wrong")
	assert.Contains(t, out, "Login incorrect")
	assert.NotContains(t, out, "wrong", "the password was echoed")
}
