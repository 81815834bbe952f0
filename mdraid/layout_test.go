package mdraid

import (
	"reflect"
	"testing"
)

func TestPlanByHand(t *testing.T) {
	const g5 = 5 << 30
	for _, tc := range []struct {
		name     string
		boot     string
		label    string
		sizes    map[string]int64
		lds      []LogicalDisk
		order    []int
		holders  map[string][]Span
		members  [][]MemberRef
		wantFail bool
	}{
		{
			// BIOS on GPT: 8 MiB kept for a BIOS boot partition, MAX to the
			// last 1 MiB boundary before the backup GPT (5 GiB - 33 sectors
			// rounds down to 5 GiB - 1 MiB).
			name: "bios gpt one MAX mirror", boot: "bios", label: "gpt",
			sizes:   map[string]int64{"/dev/vda": g5, "/dev/vdb": g5},
			lds:     []LogicalDisk{{SizeGiB: 0, Disks: []string{"/dev/vda", "/dev/vdb"}}},
			order:   []int{0},
			holders: map[string][]Span{"/dev/vda": {{1, 8 << 20, g5 - 1<<20}}, "/dev/vdb": {{1, 8 << 20, g5 - 1<<20}}},
			members: [][]MemberRef{{{"/dev/vda", 1}, {"/dev/vdb", 1}}},
		},
		{
			// UEFI: 551 MiB kept for the ESP; a 2 GiB volume ends at 2 GiB
			// from the start of the disk (parted's absolute end), the MAX
			// one (listed first) is made last and numbered 2.
			name: "uefi MAX first and 2 GiB", boot: "uefi", label: "gpt",
			sizes: map[string]int64{"/dev/sda": g5, "/dev/sdb": g5},
			lds: []LogicalDisk{
				{SizeGiB: 0, Disks: []string{"/dev/sda", "/dev/sdb"}},
				{SizeGiB: 2, Disks: []string{"/dev/sda", "/dev/sdb"}},
			},
			order: []int{1, 0},
			holders: map[string][]Span{
				"/dev/sda": {{1, 551 << 20, 2 << 30}, {2, 2 << 30, g5 - 1<<20}},
				"/dev/sdb": {{1, 551 << 20, 2 << 30}, {2, 2 << 30, g5 - 1<<20}},
			},
			members: [][]MemberRef{{{"/dev/sda", 1}, {"/dev/sdb", 1}}, {{"/dev/sda", 2}, {"/dev/sdb", 2}}},
		},
		{
			// msdos: from 1 MiB; 1 GiB then 2 GiB more.
			name: "bios msdos two sized", boot: "bios", label: "msdos",
			sizes: map[string]int64{"/dev/sda": g5, "/dev/sdb": g5, "/dev/sdc": g5},
			lds: []LogicalDisk{
				{SizeGiB: 1, Disks: []string{"/dev/sda", "/dev/sdb"}},
				{SizeGiB: 2, Disks: []string{"/dev/sda", "/dev/sdb", "/dev/sdc"}},
			},
			order: []int{0, 1},
			holders: map[string][]Span{
				"/dev/sda": {{1, 1 << 20, 1 << 30}, {2, 1 << 30, 3 << 30}},
				"/dev/sdb": {{1, 1 << 20, 1 << 30}, {2, 1 << 30, 3 << 30}},
				"/dev/sdc": {{1, 1 << 20, 2 << 30}},
			},
			members: [][]MemberRef{{{"/dev/sda", 1}, {"/dev/sdb", 1}}, {{"/dev/sda", 2}, {"/dev/sdb", 2}, {"/dev/sdc", 1}}},
		},
		{name: "too big", boot: "bios", label: "gpt", sizes: map[string]int64{"a": g5, "b": g5},
			lds: []LogicalDisk{{SizeGiB: 6, Disks: []string{"a", "b"}}}, wantFail: true},
		{name: "two MAX", boot: "bios", label: "gpt", sizes: map[string]int64{"a": g5, "b": g5},
			lds: []LogicalDisk{{Disks: []string{"a", "b"}}, {Disks: []string{"a", "b"}}}, wantFail: true},
		{name: "5 GiB volume on 5 GiB disks", boot: "uefi", label: "gpt", sizes: map[string]int64{"a": g5, "b": g5},
			lds: []LogicalDisk{{SizeGiB: 5, Disks: []string{"a", "b"}}}, wantFail: true},
		{name: "unknown holder", boot: "bios", label: "gpt", sizes: map[string]int64{"a": g5},
			lds: []LogicalDisk{{SizeGiB: 1, Disks: []string{"a", "b"}}}, wantFail: true},
		{name: "bad label", boot: "bios", label: "dos", sizes: map[string]int64{"a": g5},
			lds: []LogicalDisk{{SizeGiB: 1, Disks: []string{"a"}}}, wantFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Plan(tc.boot, tc.label, 512, tc.sizes, tc.lds)
			if tc.wantFail {
				if err == nil {
					t.Fatalf("planned %+v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(l.Order, tc.order) {
				t.Errorf("order %v, want %v", l.Order, tc.order)
			}
			if !reflect.DeepEqual(l.Holders, tc.holders) {
				t.Errorf("holders\n%v\nwant\n%v", l.Holders, tc.holders)
			}
			if !reflect.DeepEqual(l.Members, tc.members) {
				t.Errorf("members %v, want %v", l.Members, tc.members)
			}
		})
	}
}

func TestRAIDStart(t *testing.T) {
	for _, tc := range []struct {
		boot, label string
		want        int64
	}{{"uefi", "gpt", 551 << 20}, {"uefi", "msdos", 551 << 20}, {"bios", "gpt", 8 << 20}, {"bios", "msdos", 1 << 20}} {
		if got := RAIDStart(tc.boot, tc.label); got != tc.want {
			t.Errorf("%s/%s: %d, want %d", tc.boot, tc.label, got, tc.want)
		}
	}
}
