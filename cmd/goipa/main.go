// Command goipa is the in-RAM deploy agent for OpenStack Ironic.
//
//	goipa init          PID 1 of the ramdisk: mounts, modules, network, agent
//	goipa agent         the agent alone, on a host whose network is up
//	goipa <subcommand>  debugging tools (run `goipa help`)
//
// Exit status: 0 on success and for --help, 1 when a command fails, 2 for
// a usage error (unknown command, bad flag), as the flag package and most
// Unix tools do.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// subcommand is one `goipa NAME` entry. Each lives in its own file and
// registers itself from init, so the packages behind them stay independent.
type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var subcommands = map[string]subcommand{}

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	if _, dup := subcommands[name]; dup {
		panic("goipa: subcommand registered twice: " + name)
	}
	subcommands[name] = subcommand{summary: summary, run: run}
}

// usageError is a command line goipa cannot run: exit status 2. Its
// message has been printed already, with the usage, on stderr.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// printUsage lists the subcommands: on stdout when asked for, on stderr
// after a mistake.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "usage: goipa <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, subcommands[n].summary)
	}
	fmt.Fprint(w, "\n`goipa <command> --help` (or `goipa help <command>`) describes a command's flags.\n")
}

// isHelp reports whether arg asks for help in any of the usual spellings.
func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// newFlags makes a subcommand's flag set whose usage starts with its
// synopsis and summary; parseFlags decides where that usage goes.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		if synopsis != "" {
			synopsis = " " + synopsis
		}
		fmt.Fprintf(fs.Output(), "usage: goipa %s%s\n\n%s\n", name, synopsis, subcommands[name].summary)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(fs.Output(), "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a subcommand's flags. -h/--help prints its usage on
// stdout and returns flag.ErrHelp (exit 0); a bad flag or a stray
// argument prints the error and the usage on stderr and returns a
// *usageError (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Stdout.Write(out.Bytes())
		return flag.ErrHelp
	case err != nil:
		// The flag package wrote the error, then the usage.
		fmt.Fprintf(os.Stderr, "goipa %s: %s", fs.Name(), out.Bytes())
		return &usageError{err}
	case fs.NArg() > 0:
		return usageFail(fs, "unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// usageFail prints what is wrong with the command line and fs's usage on
// stderr, and returns the *usageError that makes goipa exit 2.
func usageFail(fs *flag.FlagSet, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	fmt.Fprintf(os.Stderr, "goipa %s: %v\n\n", fs.Name(), err)
	fs.SetOutput(os.Stderr)
	fs.Usage()
	return &usageError{err}
}

func init() {
	register("help", "print this list, or a command's flags (goipa help <command>)", runHelp)
}

func runHelp(ctx context.Context, args []string) error {
	switch {
	case len(args) == 0:
		printUsage(os.Stdout)
		return nil
	case len(args) == 1 && isHelp(args[0]):
		fmt.Fprint(os.Stdout, "usage: goipa help [<command>]\n\n"+subcommands["help"].summary+"\n")
		return nil
	case len(args) == 1:
		if sc, ok := subcommands[args[0]]; ok && args[0] != "help" {
			return sc.run(ctx, []string{"--help"})
		}
		fmt.Fprintf(os.Stderr, "goipa help: unknown command %q\n\n", args[0])
	default:
		fmt.Fprint(os.Stderr, "goipa help: one command at most\n\n")
	}
	printUsage(os.Stderr)
	return &usageError{errors.New("bad help request")}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// commandOf picks the subcommand from the arguments. The kernel starts
// /init (goipa, PID 1) with the command line's bare words it does not
// know itself as arguments: Ironic's ISOs carry `text`, `nofb` and the
// like, and after a `--` the kernel hands on every word. As PID 1, a
// first argument that names no subcommand means init, and the kernel's
// words are dropped (returned for the log); `goipa agent` run as PID 1
// of a PID namespace keeps its command.
func commandOf(args []string, pid int) (name string, rest, dropped []string) {
	if pid == 1 {
		if len(args) == 0 {
			return "init", nil, nil
		}
		if _, ok := subcommands[args[0]]; !ok && !isHelp(args[0]) {
			return "init", nil, args
		}
	}
	if len(args) == 0 {
		return "", nil, nil
	}
	return args[0], args[1:], nil
}

// run is main without the exit: the status it returns is goipa's.
func run(args []string) int {
	name, args, dropped := commandOf(args, os.Getpid())
	if len(dropped) > 0 {
		fmt.Fprintf(os.Stderr, "goipa init: the kernel's arguments %q are no command, ignored\n", dropped)
	}
	if isHelp(name) {
		name = "help"
	}
	sc, ok := subcommands[name]
	if !ok {
		if name == "" {
			fmt.Fprint(os.Stderr, "goipa: no command given\n\n")
		} else {
			fmt.Fprintf(os.Stderr, "goipa: unknown command %q\n\n", name)
		}
		printUsage(os.Stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := sc.run(ctx, args)
	var uerr *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &uerr):
		return 2
	}
	fmt.Fprintf(os.Stderr, "goipa %s: %v\n", name, err)
	return 1
}
