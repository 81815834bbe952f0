package logbundle

import (
	"context"
	"os"

	"github.com/goipa/goipa/efi"
)

// efibootmgr is `efibootmgr -v`'s listing of BootOrder and the Boot####
// entries, read from efivarfs.
func (c *Collector) efibootmgr(context.Context) ([]byte, error) {
	if _, err := os.Stat(c.efiVars); err != nil {
		return []byte("not booted in UEFI mode\n"), nil
	}
	return efi.Vars{Dir: c.efiVars}.Report()
}
