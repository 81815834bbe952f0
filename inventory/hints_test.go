package inventory

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func s(v string) *string { return &v }

var testDisks = []Disk{
	{Name: "/dev/sda", Model: s("PERC H730 Mini"), Vendor: s("DELL"), Size: 500 << 30, Rotational: true,
		Serial: s("6d4ae5209bc13a00"), WWN: s("0x6d4ae5209bc13a00"), WWNWithExtension: s("0x6d4ae5209bc13a001f"),
		WWNVendorExtension: s("0x1f"), HCTL: s("0:2:0:0"), ByPath: s("/dev/disk/by-path/pci-0000:03:00.0-scsi-0:2:0:0"), Tran: s("sas")},
	{Name: "/dev/nvme0n1", Model: s("Samsung SSD 980"), Size: 1000 << 30, Serial: s("S64ANS0T"), Tran: s("nvme")},
	{Name: "/dev/sdb", Model: s("Virtual Media"), Vendor: s("AMI"), Size: 1 << 30, Rotational: true, HCTL: s("1:0:0:0"), Tran: s("usb")},
	{Name: "/dev/vdc", Size: 20 << 30, Serial: s("my disk 1"), Tran: s("virtio")},
}

func TestHintsPerNameAndOperator(t *testing.T) {
	for _, tc := range []struct {
		hints map[string]any
		want  string // "" = no match
	}{
		{map[string]any{"size": 500.0}, "/dev/sda"},
		{map[string]any{"size": "500"}, "/dev/sda"},
		{map[string]any{"size": 499.0}, ""},
		{map[string]any{"size": ">= 600"}, "/dev/nvme0n1"},
		{map[string]any{"size": "> 500"}, "/dev/nvme0n1"},
		{map[string]any{"size": "< 10"}, "/dev/sdb"},
		{map[string]any{"size": "<= 20"}, "/dev/sdb"},
		{map[string]any{"size": "= 700"}, "/dev/nvme0n1"}, // "=" is >= in oslo's matcher
		{map[string]any{"size": "== 20"}, "/dev/vdc"},
		{map[string]any{"size": "!= 500"}, "/dev/nvme0n1"},
		{map[string]any{"size": "<or> 1 <or> 20"}, "/dev/sdb"},
		{map[string]any{"size": "<range-in> [ 20 500 ]"}, "/dev/sda"},
		{map[string]any{"size": "<range-in> ( 20 500 )"}, ""},
		{map[string]any{"size": "<range-in> ( 19 500 )"}, "/dev/vdc"},
		{map[string]any{"model": "Samsung SSD 980"}, "/dev/nvme0n1"},
		{map[string]any{"model": "samsung ssd 980"}, "/dev/nvme0n1"},
		{map[string]any{"model": "<in> PERC"}, "/dev/sda"},
		{map[string]any{"model": "s!= PERC H730 Mini"}, "/dev/nvme0n1"},
		{map[string]any{"model": "<or> nope <or> Virtual Media"}, "/dev/sdb"},
		{map[string]any{"model": "<all-in> virtual media"}, "/dev/sdb"},
		{map[string]any{"model": "s>= t"}, "/dev/sdb"},
		{map[string]any{"model": "s< q"}, "/dev/sda"},
		{map[string]any{"model": "s<= perc h730 mini"}, "/dev/sda"},
		{map[string]any{"model": "s> samsung"}, "/dev/nvme0n1"},
		{map[string]any{"vendor": "dell"}, "/dev/sda"},
		{map[string]any{"serial": "S64ANS0T"}, "/dev/nvme0n1"},
		{map[string]any{"serial": "my disk 1"}, "/dev/vdc"},
		{map[string]any{"wwn": "0x6d4ae5209bc13a00"}, "/dev/sda"},
		{map[string]any{"wwn_with_extension": "0x6d4ae5209bc13a001f"}, "/dev/sda"},
		{map[string]any{"wwn_vendor_extension": "0x1f"}, "/dev/sda"},
		{map[string]any{"hctl": "1:0:0:0"}, "/dev/sdb"},
		{map[string]any{"by_path": "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:2:0:0"}, "/dev/sda"},
		{map[string]any{"name": "/dev/vdc"}, "/dev/vdc"},
		{map[string]any{"name": "vdc"}, "/dev/vdc"},
		{map[string]any{"tran": "nvme"}, "/dev/nvme0n1"},
		{map[string]any{"rotational": false}, "/dev/nvme0n1"},
		{map[string]any{"rotational": "yes", "size": "< 5"}, "/dev/sdb"},
		{map[string]any{"rotational": true, "model": "samsung ssd 980"}, ""},
	} {
		d, err := SelectRootDisk(testDisks, tc.hints)
		if tc.want == "" {
			var nf *DeviceNotFoundError
			assert.True(t, errors.As(err, &nf), "%v: want no match, got %v %v", tc.hints, d.Name, err)
			continue
		}
		if assert.NoError(t, err, "%v", tc.hints) {
			assert.Equal(t, tc.want, d.Name, "%v", tc.hints)
		}
	}
}

func TestHintErrors(t *testing.T) {
	for _, h := range []map[string]any{
		{"colour": "blue"},
		{"size": -1.0},
		{"size": 1.5},
		{"size": "big"},
		{"size": "<range-in> [ 1 ]"},
		{"size": ">= x"},
		{"rotational": "maybe"},
		{"model": ""},
		{"model": []any{"x"}},
		{"model": "== x"}, // numeric operator on a string hint
	} {
		_, err := SelectRootDisk(testDisks, h)
		var nf *DeviceNotFoundError
		assert.Error(t, err, "%v", h)
		assert.False(t, errors.As(err, &nf), "%v must be a hint error, not a miss", h)
	}
}

func TestNoMatchNamesHintsAndDisks(t *testing.T) {
	_, err := SelectRootDisk(testDisks, map[string]any{"serial": "nope"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"serial":"nope"`)
	for _, d := range testDisks {
		assert.Contains(t, err.Error(), d.Name)
	}
}

func TestDefaultRule(t *testing.T) {
	d, err := SelectRootDisk(testDisks, nil)
	require.NoError(t, err)
	assert.Equal(t, "/dev/vdc", d.Name, "smallest disk of at least 4 GiB")
	_, err = SelectRootDisk([]Disk{{Name: "/dev/sdz", Size: 1 << 30}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "at least 4 GiB")
	assert.Contains(t, err.Error(), "/dev/sdz")
}

func TestNormalizeBootIF(t *testing.T) {
	assert.Equal(t, "52:54:00:12:34:56", NormalizeBootIF("01-52-54-00-12-34-56"))
	assert.Equal(t, "52:54:00:12:34:56", NormalizeBootIF("52:54:00:12:34:56"))
	assert.Equal(t, "52:54:00:12:34:56", NormalizeBootIF("52-54-00-12-34-56"))
}

func TestLLDPMarshalsAsIPAPairs(t *testing.T) {
	b, err := (LLDPTLV{Type: 1, Value: []byte{0x04, 0xaa, 0xbb}}).MarshalJSON()
	require.NoError(t, err)
	assert.Equal(t, `[1, "04aabb"]`, string(b))
}

func FuzzParseHints(f *testing.F) {
	for _, s := range []string{">= 20", "<range-in> [ 1 2 ]", "<or> a <or> b", "s== x", "<all-in> a b", "<in> x", "(", "<range-in> ( 1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, k := range []string{"size", "model", "name", "rotational"} {
			h, err := ParseHints(map[string]any{k: expr})
			if err != nil {
				continue
			}
			// Whatever parsed must evaluate without panicking.
			_, _ = SelectRootDisk(testDisks, map[string]any{k: expr})
			if k == "model" && !strings.Contains(h[k], " ") {
				t.Fatalf("normalised expression without an operator: %q", h[k])
			}
		}
	})
}

func TestNodeRootDeviceHints(t *testing.T) {
	name := map[string]any{"name": "/dev/sdb"}
	size := map[string]any{"size": ">= 10"}
	for _, tt := range []struct {
		name string
		node map[string]any
		want map[string]any
	}{
		{"no hints", map[string]any{"uuid": "n1"}, nil},
		{"instance_info's", map[string]any{"instance_info": map[string]any{"root_device": name}}, name},
		{"properties'", map[string]any{"properties": map[string]any{"root_device": size}}, size},
		{"instance_info's win", map[string]any{"instance_info": map[string]any{"root_device": name}, "properties": map[string]any{"root_device": size}}, name},
		{"an empty instance_info dict falls through", map[string]any{"instance_info": map[string]any{"root_device": map[string]any{}}, "properties": map[string]any{"root_device": size}}, size},
		{"not a dict", map[string]any{"instance_info": map[string]any{"root_device": "/dev/sda"}}, nil},
	} {
		assert.Equal(t, tt.want, NodeRootDeviceHints(tt.node), tt.name)
	}
}
