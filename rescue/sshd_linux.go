package rescue

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
)

// User is the account IPA's ramdisks create for the tenant.
const User = "rescue"

// failedLoginDelay slows password guessing: each wrong password costs the
// guesser this long.
const failedLoginDelay = time.Second

// Limits on clients that have not logged in, after sshd's options of the
// same names: at most maxStartups connections at once before login (more
// are closed at once), maxAuthTries passwords per connection, and
// loginGraceTime for the whole handshake and login.
const (
	maxStartups    = 10
	maxAuthTries   = 6
	loginGraceTime = 30 * time.Second
)

// Server is the ramdisk's one SSH server: it lets in the users of its
// accounts (root with the operator's `sshkey=`/`rootpwd=`, User with the
// rescue password) and runs the shell for them: an interactive one (with
// a PTY when the client asks for one) or `shell -c command` for exec
// requests. The shell runs as root for every account, as the rescue user
// of IPA's ramdisks effectively does (it has passwordless sudo): the
// ramdisk has no other Unix account.
type Server struct {
	mu       sync.RWMutex
	accounts map[string]Account
	// decoy is hashed for a user with no password, so that a wrong user
	// name costs the same as a wrong password.
	decoy  *Hash
	shell  string
	log    *slog.Logger
	config *ssh.ServerConfig
	signer ssh.Signer
	// preauth holds a slot for each connection that has not logged in.
	preauth    chan struct{}
	loginGrace time.Duration
}

// Option configures a Server.
type Option func(*Server)

// WithShell sets the shell (default /bin/sh, the ramdisk's gosh).
func WithShell(path string) Option { return func(s *Server) { s.shell = path } }

// WithLoginGraceTime sets how long a client has from connecting to being
// logged in (default 30 s, sshd's LoginGraceTime is 120 s).
func WithLoginGraceTime(d time.Duration) Option { return func(s *Server) { s.loginGrace = d } }

// WithAccount lets user in as a says (SetAccount at start).
func WithAccount(user string, a Account) Option {
	return func(s *Server) { s.accounts[user] = a }
}

// WithLogger sets where logins and sessions are logged.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// NewServer makes a server for the accounts given with WithAccount (more
// may come later with SetAccount) and a fresh ed25519 host key: the
// ramdisk has no state to keep one in, as IPA's ramdisks generate theirs
// at boot.
func NewServer(opts ...Option) (*Server, error) {
	s := &Server{accounts: map[string]Account{}, shell: "/bin/sh", log: slog.Default(),
		preauth: make(chan struct{}, maxStartups), loginGrace: loginGraceTime}
	for _, o := range opts {
		o(s)
	}
	decoy, err := HashSHA512(rand.Text())
	if err != nil {
		return nil, err
	}
	if s.decoy, err = ParseHash(decoy); err != nil {
		return nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if s.signer, err = ssh.NewSignerFromKey(key); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	s.config = &ssh.ServerConfig{
		ServerVersion:     "SSH-2.0-goipa",
		PasswordCallback:  s.checkPassword,
		PublicKeyCallback: s.checkKey,
		MaxAuthTries:      maxAuthTries,
	}
	s.config.AddHostKey(s.signer)
	return s, nil
}

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.signer.PublicKey() }

// SetAccount lets user in as a from the next login on, on the listener
// already served: the rescue account joins the operator's root login
// after finalize_rescue. An account with no key and no password removes
// user.
func (s *Server) SetAccount(user string, a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.empty() {
		delete(s.accounts, user)
		return
	}
	s.accounts[user] = a
}

func (s *Server) account(user string) (Account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[user]
	return a, ok
}

func (s *Server) checkPassword(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
	a, _ := s.account(meta.User())
	h := a.Password
	if h == nil {
		h = s.decoy
	}
	// Always hash, so a wrong user name costs the same as a wrong password
	// (Verify does not hash a password over MaxPasswordLen).
	ok := h.Verify(string(password))
	if a.Password == nil || !ok {
		s.log.Warn("SSH: login refused", "user", meta.User(), "method", "password", "remote", meta.RemoteAddr().String())
		time.Sleep(failedLoginDelay)
		return nil, errors.New("permission denied")
	}
	s.log.Info("SSH: login", "user", meta.User(), "method", "password", "remote", meta.RemoteAddr().String())
	return &ssh.Permissions{}, nil
}

// checkKey accepts a key of the user's account. x/crypto/ssh asks before
// it checks the client's signature, and lets the client in only once the
// signature proves it holds the private key.
func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	a, _ := s.account(meta.User())
	blob := key.Marshal()
	for _, k := range a.AuthorizedKeys {
		if bytes.Equal(k.Marshal(), blob) {
			s.log.Info("SSH: public key accepted", "user", meta.User(), "key", ssh.FingerprintSHA256(key), "remote", meta.RemoteAddr().String())
			return &ssh.Permissions{}, nil
		}
	}
	s.log.Warn("SSH: public key refused", "user", meta.User(), "key", ssh.FingerprintSHA256(key), "remote", meta.RemoteAddr().String())
	return nil, errors.New("permission denied")
}

// Serve accepts connections on ln until ctx ends, then closes ln and
// every connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("SSH: accept: %w", err)
		}
		select {
		case s.preauth <- struct{}{}:
		default:
			// As sshd past MaxStartups: drop it before any work.
			s.log.Warn("SSH: too many connections not logged in, dropping one", "remote", nc.RemoteAddr().String(), "limit", cap(s.preauth))
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleConn(ctx, nc)
		}()
	}
}

func (s *Server) handleConn(ctx context.Context, nc net.Conn) {
	// A client that never finishes the handshake and login must not hold
	// a goroutine or a pre-login slot.
	nc.SetDeadline(time.Now().Add(s.loginGrace))
	stopHandshake := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.config)
	stopHandshake()
	<-s.preauth
	if err != nil {
		nc.Close()
		s.log.Debug("SSH: handshake", "remote", nc.RemoteAddr().String(), "error", err)
		return
	}
	nc.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ctx, sc.User(), ch, creqs)
		}()
	}
	wg.Wait()
}

// The payloads of the session requests (RFC 4254 section 6).
type (
	ptyRequest struct {
		Term                          string
		Cols, Rows, WidthPx, HeightPx uint32
		Modes                         string
	}
	windowChange struct{ Cols, Rows, WidthPx, HeightPx uint32 }
	envRequest   struct{ Name, Value string }
	execRequest  struct{ Command string }
	exitStatus   struct{ Status uint32 }
)

// session serves one session channel: env and pty-req before one shell
// or exec request, window-change after it.
func (s *Server) session(ctx context.Context, user string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	// The shell ends with its session: a client that goes away leaves
	// nothing running.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		env     []string
		ptyReq  *ptyRequest
		ptmx    *os.File
		started bool
		done    = make(chan uint32, 1)
	)
	for {
		select {
		case code := <-done:
			ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{code}))
			return
		case req, ok := <-reqs:
			if !ok {
				return
			}
			switch req.Type {
			case "env":
				var e envRequest
				if ssh.Unmarshal(req.Payload, &e) != nil {
					req.Reply(false, nil)
					continue
				}
				env = append(env, e.Name+"="+e.Value)
				req.Reply(true, nil)
			case "pty-req":
				var p ptyRequest
				if started || ssh.Unmarshal(req.Payload, &p) != nil {
					req.Reply(false, nil)
					continue
				}
				ptyReq = &p
				req.Reply(true, nil)
			case "window-change":
				var w windowChange
				if ptmx != nil && ssh.Unmarshal(req.Payload, &w) == nil {
					pty.Setsize(ptmx, &pty.Winsize{Rows: uint16(w.Rows), Cols: uint16(w.Cols)})
				}
				if req.WantReply {
					req.Reply(ptmx != nil, nil)
				}
			case "shell", "exec":
				var command string
				if req.Type == "exec" {
					var e execRequest
					if ssh.Unmarshal(req.Payload, &e) != nil {
						req.Reply(false, nil)
						continue
					}
					command = e.Command
				}
				if started {
					req.Reply(false, nil)
					continue
				}
				f, err := s.start(ctx, user, ch, command, env, ptyReq, done)
				if err != nil {
					s.log.Error("SSH: starting the shell", "error", err)
					req.Reply(false, nil)
					continue
				}
				started, ptmx = true, f
				req.Reply(true, nil)
			default:
				if req.WantReply {
					req.Reply(false, nil)
				}
			}
		}
	}
}

// start runs the shell (interactive when command is empty) wired to ch,
// and sends its exit code to done once it and its output have ended. With
// a PTY it returns the PTY's master, for window changes.
func (s *Server) start(ctx context.Context, user string, ch ssh.Channel, command string, env []string, p *ptyRequest, done chan<- uint32) (*os.File, error) {
	args := []string{}
	if command != "" {
		args = append(args, "-c", command)
	}
	cmd := exec.CommandContext(ctx, s.shell, args...)
	cmd.Dir = "/"
	path := os.Getenv("PATH")
	if path == "" {
		path = "/bbin:/bin:/usr/bin:/sbin:/usr/sbin"
	}
	cmd.Env = []string{"PATH=" + path, "HOME=/", "USER=" + user, "LOGNAME=" + user, "SHELL=" + s.shell}
	cmd.Env = append(cmd.Env, env...)
	if p != nil {
		cmd.Env = append(cmd.Env, "TERM="+p.Term)
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(p.Rows), Cols: uint16(p.Cols)})
		if err != nil {
			return nil, err
		}
		go io.Copy(f, ch)
		output := make(chan struct{})
		go func() {
			io.Copy(ch, f) // ends with EIO once every holder of the PTY has gone
			close(output)
		}()
		go func() {
			code := exitCode(cmd.Wait())
			// Background jobs may keep the PTY open: do not wait for them.
			select {
			case <-output:
			case <-time.After(time.Second):
			}
			f.Close()
			done <- code
		}()
		return f, nil
	}
	// No PTY: a session of its own all the same, so the shell's jobs are
	// not in PID 1's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	go func() { done <- exitCode(cmd.Wait()) }()
	return nil, nil
}

func exitCode(err error) uint32 {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return uint32(ee.ExitCode())
	}
	return 255
}
