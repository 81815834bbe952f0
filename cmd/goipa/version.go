package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/goipa/goipa/agent"
)

func init() {
	register("version", "print goipa's version and the IPA version it reports to Ironic", runVersion)
}

func runVersion(_ context.Context, args []string) error {
	fs := newFlags("version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Ironic stores agent_version and gates features on it, so an
	// operator comparing goipa with IPA needs both numbers.
	fmt.Printf("goipa %s (%s, %s/%s)\n", agent.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("ironic-python-agent %s (agent_version reported to Ironic)\n", agent.IPAVersion)
	return nil
}
