package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LoginBanner is printed on its own line before every login prompt of a
// rescued node, so a person (or a test reading the serial console line by
// line) knows the prompt is there.
const LoginBanner = "goipa rescue: log in as user rescue with the rescue password"

// ConsoleLogin is the getty of a rescued ramdisk: on /dev/console it asks
// for a user name and a password (not echoed), and gives the shell to
// whoever verify accepts, then asks again when the shell exits. It runs
// until ctx ends. A wrong answer costs two seconds, as login(1) makes it.
func ConsoleLogin(ctx context.Context, log *slog.Logger, shell string, verify func(user, password string) bool) {
	for ctx.Err() == nil {
		if err := loginOnce(ctx, log, "/dev/console", shell, verify); err != nil {
			log.Error("console login", "error", err)
			// A console that cannot be opened or read will not recover at
			// once; do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// loginOnce asks once on the terminal at path (a test passes a PTY).
func loginOnce(ctx context.Context, log *slog.Logger, path, shell string, verify func(user, password string) bool) error {
	// Not our controlling terminal: the shell's session takes it.
	tty, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer tty.Close()
	stop := context.AfterFunc(ctx, func() { tty.Close() })
	defer stop()

	fmt.Fprintf(tty, "\r\n%s\r\nlogin: ", LoginBanner)
	user, err := readLine(tty)
	if err != nil {
		return err
	}
	user = strings.TrimSpace(user)
	if user == "" {
		return nil
	}
	fmt.Fprint(tty, "Password: ")
	password, err := readSecret(tty)
	fmt.Fprint(tty, "\r\n")
	if err != nil {
		return err
	}
	if !verify(user, password) {
		log.Warn("console login refused", "user", user)
		time.Sleep(2 * time.Second)
		fmt.Fprint(tty, "Login incorrect\r\n")
		return nil
	}
	log.Info("console login", "user", user)
	return runShell(ctx, tty, shell, user)
}

// readLine reads up to a newline a byte at a time, so nothing typed after
// it (the password) is consumed here.
func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 4096 {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == '\n' || one[0] == '\r' {
				return string(b), nil
			}
			b = append(b, one[0])
		}
		if err != nil {
			return string(b), err
		}
	}
	return string(b), errors.New("line too long")
}

// readSecret reads a line with the terminal's echo off, and restores it.
func readSecret(tty *os.File) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("console termios: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("console echo off: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	return readLine(tty)
}

// runShell gives the console to the shell in a session of its own, as
// RescueShell does, and waits for it to exit.
func runShell(ctx context.Context, tty *os.File, shell, user string) error {
	cmd := exec.CommandContext(ctx, shell)
	cmd.Dir = "/"
	path := os.Getenv("PATH")
	if path == "" {
		path = "/bbin:/bin:/usr/bin:/sbin:/usr/sbin"
	}
	// TERM=dumb: a serial console may not answer the line editor's queries.
	cmd.Env = []string{"PATH=" + path, "HOME=/", "USER=" + user, "LOGNAME=" + user, "SHELL=" + shell, "TERM=dumb"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("shell: %w", err)
		}
	}
	return nil
}
