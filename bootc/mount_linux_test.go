package bootc

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/goipa/goipa/internal/testenv"
)

// TestWithMountIsNodevNosuid: what withMount mounts (the bootc root) has
// device nodes and setuid bits disabled while goipa holds it.
func TestWithMountIsNodevNosuid(t *testing.T) {
	testenv.NeedRoot(t)
	var flags int64
	err := withMount("goipa-bootc-test", "tmpfs", func(root *os.Root) error {
		var st unix.Statfs_t
		if err := unix.Statfs(root.Name(), &st); err != nil {
			return err
		}
		flags = st.Flags
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		bit  int64
	}{{"nodev", unix.ST_NODEV}, {"nosuid", unix.ST_NOSUID}} {
		if flags&f.bit == 0 {
			t.Errorf("the bootc root is mounted without %s (statfs flags %#x)", f.name, flags)
		}
	}
}
