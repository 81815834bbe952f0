package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/agent"
)

// asGoipa makes the test binary goipa itself when set: the CLI tests run
// it as a child process, so they see real exit codes and streams.
const asGoipa = "GOIPA_CLI_TEST_AS_GOIPA"

func TestMain(m *testing.M) {
	if os.Getenv(asGoipa) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runGoipa(t *testing.T, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asGoipa+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("goipa %v: %v", args, err)
	}
	return cliResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestCommandLine checks what a person or a script sees: help on stdout
// with status 0, mistakes on stderr with status 2, failures with 1, and
// nothing on the other stream.
func TestCommandLine(t *testing.T) {
	const listing = "usage: goipa <command>"
	type cliCase struct {
		name      string
		args      []string
		code      int
		stdoutHas []string // empty: stdout must be empty
		stderrHas []string // empty: stderr must be empty
	}
	tests := []cliCase{
		{name: "help", args: []string{"help"}, code: 0, stdoutHas: []string{listing, "write-image", "version"}},
		{name: "-h", args: []string{"-h"}, code: 0, stdoutHas: []string{listing}},
		{name: "--help", args: []string{"--help"}, code: 0, stdoutHas: []string{listing}},
		{name: "-help", args: []string{"-help"}, code: 0, stdoutHas: []string{listing}},
		{name: "no command", args: nil, code: 2, stderrHas: []string{"no command given", listing}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderrHas: []string{`unknown command "frobnicate"`, listing}},
		{name: "help on an unknown command", args: []string{"help", "frobnicate"}, code: 2, stderrHas: []string{`unknown command "frobnicate"`, listing}},
		{name: "help on a command", args: []string{"help", "erase"}, code: 0, stdoutHas: []string{"usage: goipa erase", "-method"}},
		{name: "version", args: []string{"version"}, code: 0,
			stdoutHas: []string{"goipa " + agent.Version, "ironic-python-agent " + agent.IPAVersion}},
		{name: "unknown flag", args: []string{"erase", "--no-such-flag"}, code: 2,
			stderrHas: []string{"goipa erase: flag provided but not defined: -no-such-flag", "usage: goipa erase"}},
		{name: "stray argument", args: []string{"version", "now"}, code: 2, stderrHas: []string{`unexpected argument "now"`, "usage: goipa version"}},
		{name: "missing required flag", args: []string{"erase"}, code: 2, stderrHas: []string{"--device is required", "usage: goipa erase"}},
		{name: "missing source", args: []string{"write-image", "--device", "/dev/null"}, code: 2,
			stderrHas: []string{"--source", "usage: goipa write-image"}},
		{name: "unknown erase method", args: []string{"erase", "--device", "/dev/null", "--method", "shred"}, code: 2,
			stderrHas: []string{`unknown --method "shred"`}},
		// A command that runs and fails: status 1, the cause on stderr.
		{name: "command fails", args: []string{"write-image", "--source", "file:///nonexistent/goipa-cli-test.img", "--checksum", "none",
			"--device", "/nonexistent/goipa-cli-test-dev", "--parallel", "1"}, code: 1, stderrHas: []string{"goipa write-image:"}},
		{name: "agent with a bad parameter", args: []string{"agent", "--cmdline-file=/dev/null", "--ipa-standalone=1", "--ipa-listen-port=port"}, code: 1,
			stderrHas: []string{"ipa-listen-port"}},
	}
	// Every subcommand answers --help (and help NAME) on stdout with 0.
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	require.Subset(t, names, []string{"agent", "init", "inventory", "snapshot", "write-image", "erase", "version", "help"})
	for _, n := range names {
		tests = append(tests, cliCase{name: n + " --help", args: []string{n, "--help"}, code: 0,
			stdoutHas: []string{"usage: goipa " + n, subcommands[n].summary}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runGoipa(t, tc.args...)
			assert.Equal(t, tc.code, res.code, "exit status of goipa %v\nstdout:\n%s\nstderr:\n%s", tc.args, res.stdout, res.stderr)
			check := func(stream, got string, want []string) {
				if len(want) == 0 {
					assert.Empty(t, got, "goipa %v wrote on %s", tc.args, stream)
				}
				for _, w := range want {
					assert.Contains(t, got, w, "goipa %v on %s", tc.args, stream)
				}
			}
			check("stdout", res.stdout, tc.stdoutHas)
			check("stderr", res.stderr, tc.stderrHas)
		})
	}
}

// TestCommandOfKernelArguments: as PID 1 the kernel's bare words (what
// Ironic's ISO command lines carry: `text`, `nofb`, words after `--`)
// start init instead of failing as an unknown command, which would
// panic the kernel; elsewhere an unknown word stays an error.
func TestCommandOfKernelArguments(t *testing.T) {
	tests := []struct {
		args          []string
		pid           int
		name          string
		rest, dropped []string
	}{
		{args: nil, pid: 1, name: "init"},
		{args: []string{"nofb", "text"}, pid: 1, name: "init", dropped: []string{"nofb", "text"}},
		{args: []string{"text", "init"}, pid: 1, name: "init", dropped: []string{"text", "init"}},
		{args: []string{"init", "--cmdline-file=/x"}, pid: 1, name: "init", rest: []string{"--cmdline-file=/x"}},
		{args: []string{"agent", "--ipa-standalone=1"}, pid: 1, name: "agent", rest: []string{"--ipa-standalone=1"}},
		{args: []string{"--help"}, pid: 1, name: "--help"},
		{args: []string{"nofb"}, pid: 4242, name: "nofb"},
		{args: nil, pid: 4242, name: ""},
	}
	for _, tc := range tests {
		name, rest, dropped := commandOf(tc.args, tc.pid)
		assert.Equal(t, tc.name, name, "%v as pid %d", tc.args, tc.pid)
		assert.Equal(t, tc.rest, nilIfEmpty(rest), "%v as pid %d", tc.args, tc.pid)
		assert.Equal(t, tc.dropped, dropped, "%v as pid %d", tc.args, tc.pid)
	}
	// Outside PID 1 the same words are a usage error (exit 2).
	res := runGoipa(t, "nofb")
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, `unknown command "nofb"`)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
