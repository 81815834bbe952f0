// Command goipa is the in-RAM deploy agent for OpenStack Ironic.
//
//	goipa init          PID 1 of the ramdisk: mounts, modules, network, agent
//	goipa agent         the agent alone, on a host whose network is up
//	goipa <subcommand>  debugging tools (run `goipa help`)
package main

import (
	"context"
	"fmt"
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

func usage() {
	fmt.Fprintln(os.Stderr, "usage: goipa <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-14s %s\n", n, subcommands[n].summary)
	}
}

func main() {
	name := ""
	args := os.Args[1:]
	if len(args) > 0 {
		name, args = args[0], args[1:]
	} else if os.Getpid() == 1 {
		name = "init" // the kernel starts us without arguments
	}
	sc, ok := subcommands[name]
	if !ok {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := sc.run(ctx, args); err != nil {
		fmt.Fprintf(os.Stderr, "goipa %s: %v\n", name, err)
		os.Exit(1)
	}
}
