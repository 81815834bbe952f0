package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/goipa/goipa/agent"
	"github.com/goipa/goipa/initramfs/boot"
	"github.com/goipa/goipa/rescue"
)

// rescueShell is the ramdisk's shell (u-root's gosh, from the debug
// commands) that the rescue user gets.
const rescueShell = "/bin/sh"

// sshAddr is where the ramdisk's one SSH server listens.
const sshAddr = ":22"

// rescueOption gives PID 1's agent the ramdisk's SSH access: at once the
// operator's debug login for root when `sshkey=` or `rootpwd=` is given
// (what DIB's dynamic-login element does on IPA's ramdisks), and, after
// finalize_rescue, what IPA's ramdisks do (their init creates the
// `rescue` account from the stored hash): the rescue user on the same SSH
// server and a login on the console. A host agent starts neither: root
// logins to the host are not goipa's to open.
func rescueOption(ctx context.Context, log *slog.Logger, cfg *agent.Config, realPower bool) agent.Option {
	if !realPower {
		if cfg.SSHKey != "" || cfg.RootPwd != "" {
			log.Warn("sshkey and rootpwd are ignored: only the ramdisk (goipa init) starts an SSH server for root")
		}
		return agent.WithRescue(nil)
	}
	access := &sshAccess{ctx: ctx, log: log, addr: sshAddr}
	access.startDebugLogin(cfg)
	return agent.WithRescue(func(hash string) {
		h, err := rescue.ParseHash(hash)
		if err != nil {
			log.Error("rescue: the stored hash does not parse", "error", err)
			return
		}
		if err := access.setAccount(rescue.User, rescue.Account{Password: h}); err != nil {
			log.Error("rescue: SSH", "error", err)
		}
		go boot.ConsoleLogin(ctx, log, rescueShell, func(user, password string) bool {
			return user == rescue.User && h.Verify(password)
		})
		log.Info("rescue: login on the console", "user", rescue.User)
	})
}

// sshAccess is the ramdisk's one SSH server, started by the first account
// that needs it: nothing listens until then.
type sshAccess struct {
	ctx  context.Context
	log  *slog.Logger
	addr string

	mu  sync.Mutex
	srv *rescue.Server
	ln  net.Listener
}

// startDebugLogin lets root in with cfg's sshkey and rootpwd, if any. A
// value that does not parse is logged and left out: debug access never
// stops a deploy.
func (a *sshAccess) startDebugLogin(cfg *agent.Config) {
	var root rescue.Account
	if cfg.SSHKey != "" {
		keys, err := rescue.ParseAuthorizedKeys(cfg.SSHKey)
		if err != nil {
			a.log.Error("sshkey: no root login by key", "error", err)
		}
		root.AuthorizedKeys = keys
	}
	if cfg.RootPwd != "" {
		h, err := rescue.ParseHash(cfg.RootPwd)
		if err != nil {
			a.log.Error("rootpwd: no root login by password", "error", err)
		}
		root.Password = h
	}
	if len(root.AuthorizedKeys) == 0 && root.Password == nil {
		return
	}
	if err := a.setAccount("root", root); err != nil {
		a.log.Error("debug SSH login", "error", err)
		return
	}
	a.log.Info("debug SSH login for root", "keys", len(root.AuthorizedKeys), "password", root.Password != nil)
}

// setAccount adds user to the server, starting it on the first call.
func (a *sshAccess) setAccount(user string, acct rescue.Account) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.srv.SetAccount(user, acct)
		a.log.Info("SSH: account added", "user", user, "address", a.ln.Addr().String())
		return nil
	}
	srv, err := rescue.NewServer(rescue.WithShell(rescueShell), rescue.WithLogger(a.log), rescue.WithAccount(user, acct))
	if err != nil {
		return fmt.Errorf("SSH server: %w", err)
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return fmt.Errorf("SSH listen: %w", err)
	}
	a.srv, a.ln = srv, ln
	go func() {
		if err := srv.Serve(a.ctx, ln); err != nil && !errors.Is(err, net.ErrClosed) {
			a.log.Error("SSH server stopped", "error", err)
		}
	}()
	// The fingerprint on the console is how a user checks the host key,
	// made fresh at every boot.
	a.log.Info("SSH server listening", "address", ln.Addr().String(), "user", user,
		"host_key", ssh.FingerprintSHA256(srv.HostKey()))
	return nil
}

// listener is the server's listener, nil while no account needs one.
func (a *sshAccess) listener() net.Listener {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ln
}

// server is the running server, nil while no account needs one.
func (a *sshAccess) server() *rescue.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.srv
}
