package test

import (
	"os"
	"testing"

	"github.com/goipa/goipa/internal/testenv"
)

// TestMain removes what the tests share once per run (the goipa binary
// and the ramdisks in goipa-bin-*, goipa-ramdisk-*, goipa-ipmi-ramdisk-*,
// goipa-arm64-ramdisk-*) when the run ends, pass or fail.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
