package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/goipa/goipa/agent"
	"github.com/goipa/goipa/rescue"
)

func testSSHAccess(t *testing.T) (*sshAccess, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	a := &sshAccess{ctx: ctx, log: slog.New(slog.NewTextHandler(&logs, nil)), addr: "127.0.0.1:0"}
	t.Cleanup(func() {
		cancel()
		if ln := a.listener(); ln != nil {
			ln.Close()
		}
	})
	return a, &logs
}

func sshKeyPair(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func sshRun(t *testing.T, a *sshAccess, user string, auth ssh.AuthMethod, command string) (string, error) {
	t.Helper()
	c, err := ssh.Dial("tcp", a.listener().Addr().String(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(a.server().HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	sess, err := c.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	return string(out), err
}

// TestDebugLoginThenRescueOnOneServer: sshkey and rootpwd start the SSH
// server for root; finalize_rescue's account joins the same listener.
func TestDebugLoginThenRescueOnOneServer(t *testing.T) {
	good, line := sshKeyPair(t)
	bad, _ := sshKeyPair(t)
	rootHash, err := rescue.HashSHA512("operator pw")
	require.NoError(t, err)
	a, logs := testSSHAccess(t)
	a.startDebugLogin(&agent.Config{SSHKey: line + " op@metal3", RootPwd: rootHash})
	ln := a.listener()
	require.NotNil(t, ln, "no SSH server with sshkey and rootpwd: %s", logs)

	out, err := sshRun(t, a, "root", ssh.PublicKeys(good), `echo "$USER $((40+2))"`)
	require.NoError(t, err)
	assert.Equal(t, "root 42\n", out)
	out, err = sshRun(t, a, "root", ssh.Password("operator pw"), "echo by-password")
	require.NoError(t, err)
	assert.Equal(t, "by-password\n", out)
	_, err = sshRun(t, a, "root", ssh.PublicKeys(bad), "true")
	assert.Error(t, err, "a wrong key logged in")
	_, err = sshRun(t, a, "root", ssh.Password("operator p"), "true")
	assert.Error(t, err, "a wrong password logged in")

	rescueHash, err := rescue.HashSHA256("tenant pw")
	require.NoError(t, err)
	h, err := rescue.ParseHash(rescueHash)
	require.NoError(t, err)
	require.NoError(t, a.setAccount(rescue.User, rescue.Account{Password: h}))
	assert.Same(t, ln, a.listener(), "the rescue account got a second listener")
	out, err = sshRun(t, a, rescue.User, ssh.Password("tenant pw"), `echo "$USER"`)
	require.NoError(t, err)
	assert.Equal(t, "rescue\n", out)
	out, err = sshRun(t, a, "root", ssh.PublicKeys(good), "echo still")
	require.NoError(t, err)
	assert.Equal(t, "still\n", out)
}

// TestNoDebugLoginNoServer: without usable sshkey/rootpwd nothing
// listens; values that do not parse are logged, never fatal.
func TestNoDebugLoginNoServer(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  agent.Config
		log  string
	}{
		{"none", agent.Config{}, ""},
		{"unquoted key: the kernel keeps only the type", agent.Config{SSHKey: "ssh-ed25519"}, "sshkey: no root login by key"},
		{"MD5 crypt", agent.Config{RootPwd: "$1$salt$hash"}, "rootpwd: no root login by password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, logs := testSSHAccess(t)
			a.startDebugLogin(&c.cfg)
			assert.Nil(t, a.listener(), "an SSH server runs")
			if c.log != "" {
				assert.Contains(t, logs.String(), c.log)
			}
		})
	}
}

// TestHostAgentIgnoresDebugLogin: a host agent says it ignores the
// parameters and starts nothing (it gets no rescue start function).
func TestHostAgentIgnoresDebugLogin(t *testing.T) {
	var logs bytes.Buffer
	opt := rescueOption(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)),
		&agent.Config{SSHKey: "ssh-ed25519 AAAA", RootPwd: "$6$x$y"}, false)
	require.NotNil(t, opt)
	assert.Contains(t, logs.String(), "sshkey and rootpwd are ignored")
}
