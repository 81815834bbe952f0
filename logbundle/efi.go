package logbundle

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/goipa/goipa/efi"
)

// efibootmgr is `efibootmgr -v`'s listing of BootOrder and the Boot####
// entries, read from efivarfs.
func (c *Collector) efibootmgr(context.Context) ([]byte, error) {
	if _, err := os.Stat(c.efiVars); err != nil {
		return []byte("not booted in UEFI mode\n"), nil
	}
	vars := efi.Vars{Dir: c.efiVars}
	var b strings.Builder
	order, err := vars.BootOrder()
	if err != nil {
		return nil, err
	}
	nums := make([]string, len(order))
	for i, n := range order {
		nums[i] = fmt.Sprintf("%04X", n)
	}
	fmt.Fprintf(&b, "BootOrder: %s\n", strings.Join(nums, ","))
	ents, err := vars.BootEntries()
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		fmt.Fprintln(&b, e.String())
	}
	return []byte(b.String()), nil
}
