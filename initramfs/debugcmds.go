package initramfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/u-root/uio/llog"
)

// DebugCommands are the u-root commands an operator gets on the console:
// a shell, the usual file tools, the kernel log, networking and mounts.
var DebugCommands = []string{
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/umount",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/free",
	"github.com/u-root/u-root/cmds/core/lsmod",
	"github.com/u-root/u-root/cmds/core/insmod", // a driver coldplug did not load (a test's netdevsim)
	"github.com/u-root/u-root/cmds/core/hexdump",
	"github.com/u-root/u-root/cmds/core/blkid", // with gpt and df, what lsblk would show
	"github.com/u-root/u-root/cmds/core/gpt",
	"github.com/u-root/u-root/cmds/core/df",
	"github.com/u-root/u-root/cmds/core/grep",
	"github.com/u-root/u-root/cmds/core/pci",
}

// debugRecords builds the commands as one u-root busybox (bbin/bb with a
// link per command, bin/sh) and returns its cpio records.
func debugRecords(o Options, tmp string) ([]cpio.Record, error) {
	out := filepath.Join(tmp, "debug.cpio")
	env := golang.Default(golang.DisableCGO(), golang.WithGOARCH(o.Arch), golang.WithWorkingDir(o.SourceDir))
	err := uimage.Create(llog.Default(),
		uimage.WithTempDir(tmp),
		uimage.WithReplaceEnv(env),
		uimage.WithBusyboxCommands(o.DebugCommands...),
		uimage.WithShell("gosh"),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(out),
	)
	if err != nil {
		return nil, fmt.Errorf("building the debug commands: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		return nil, err
	}
	var keep []cpio.Record
	for _, r := range recs {
		// Our own /init and base files win; take the commands only.
		if strings.HasPrefix(r.Name, "bbin") || r.Name == "bin" || strings.HasPrefix(r.Name, "bin/") {
			if r.Mode&cpio.S_IFMT == cpio.S_IFREG {
				data := make([]byte, r.FileSize)
				if _, err := r.ReadAt(data, 0); err != nil && int64(len(data)) != 0 {
					return nil, err
				}
				r = cpio.StaticRecord(data, r.Info)
			}
			keep = append(keep, r)
		}
	}
	return keep, nil
}
