package mdraid

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestExamineZeroAndMember works on plain files: Examine finds what
// Superblocks wrote, IsMember says so, ZeroSuperblock removes it.
func TestExamineZeroAndMember(t *testing.T) {
	for _, minor := range []int{Metadata12, Metadata10} {
		p := filepath.Join(t.TempDir(), "member")
		const sectors = 1 << 15
		if err := os.WriteFile(p, make([]byte, sectors*512), 0o644); err != nil {
			t.Fatal(err)
		}
		if IsMember(p) {
			t.Fatal("an empty file is a member")
		}
		sbs, err := Spec{Name: "md0", Level: 1, Metadata: minor}.Superblocks([]uint64{sectors, sectors}, make([][16]byte, 2))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSuperblock(p, sbs[0]); err != nil {
			t.Fatal(err)
		}
		sb, m, err := Examine(p)
		if err != nil || m != minor || sb.VolumeName() != "md0" {
			t.Fatalf("metadata 1.%d: examine %v %d %v", minor, sb, m, err)
		}
		if !IsMember(p) {
			t.Errorf("metadata 1.%d: not seen as a member", minor)
		}
		if err := ZeroSuperblock(p); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Examine(p); !errors.Is(err, ErrNoSuperblock) {
			t.Errorf("metadata 1.%d: superblock left after zeroing: %v", minor, err)
		}
	}
}
