package main

import (
	"context"
	"log/slog"
	"net"

	"golang.org/x/crypto/ssh"

	"github.com/goipa/goipa/agent"
	"github.com/goipa/goipa/initramfs/boot"
	"github.com/goipa/goipa/rescue"
)

// rescueShell is the ramdisk's shell (u-root's gosh, from the debug
// commands) that the rescue user gets.
const rescueShell = "/bin/sh"

// rescueOption gives PID 1's agent what IPA's ramdisks do after
// finalize_rescue (their init creates the `rescue` account from the
// stored hash): SSH on port 22 and a login on the console, for user
// rescue with that password. A host agent has nothing to start.
func rescueOption(ctx context.Context, log *slog.Logger, realPower bool) agent.Option {
	if !realPower {
		return agent.WithRescue(nil)
	}
	return agent.WithRescue(func(hash string) {
		h, err := rescue.ParseHash(hash)
		if err != nil {
			log.Error("rescue: the stored hash does not parse", "error", err)
			return
		}
		srv, err := rescue.NewServer(hash, rescue.WithShell(rescueShell), rescue.WithLogger(log))
		if err != nil {
			log.Error("rescue: SSH server", "error", err)
		} else if ln, err := net.Listen("tcp", ":22"); err != nil {
			log.Error("rescue: SSH listen", "error", err)
		} else {
			go func() {
				if err := srv.Serve(ctx, ln); err != nil {
					log.Error("rescue: SSH server stopped", "error", err)
				}
			}()
			// The fingerprint on the console is how a tenant checks the
			// host key, made fresh at every rescue.
			log.Info("rescue: SSH server listening", "address", ln.Addr().String(), "user", rescue.User,
				"host_key", ssh.FingerprintSHA256(srv.HostKey()))
		}
		go boot.ConsoleLogin(ctx, log, rescueShell, func(user, password string) bool {
			return user == rescue.User && h.Verify(password)
		})
		log.Info("rescue: login on the console", "user", rescue.User)
	})
}
