package disk

import (
	"errors"
	"reflect"
	"testing"
)

// vpd83 builds a Device Identification page from designators, each
// {code set/type byte 1 (association and type), value}.
func vpd83(ds ...[]byte) []byte {
	var body []byte
	for _, d := range ds {
		body = append(body, d...)
	}
	return append([]byte{0, 0x83, byte(len(body) >> 8), byte(len(body))}, body...)
}

func designator(piv byte, typ byte, val []byte) []byte {
	return append([]byte{0x01, piv | typ, 0, byte(len(val))}, val...)
}

func TestParseVPD83(t *testing.T) {
	naa5 := []byte{0x50, 0x00, 0xc5, 0x00, 0xa1, 0xb2, 0xc3, 0xd4}
	naa6 := []byte{0x60, 0x0a, 0x0b, 0x80, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}
	naa3 := []byte{0x30, 1, 2, 3, 4, 5, 6, 7}
	eui := []byte{0x00, 0x25, 0x38, 0xb5, 0x71, 0xb0, 0x4c, 0x1d}
	t10 := []byte("ATA     QEMU HARDDISK   QM00001 ")
	for _, tc := range []struct {
		name string
		page []byte
		want string
		err  bool
	}{
		{"QEMU scsi-hd with wwn: NAA IEEE Registered", vpd83(designator(0, 0x0, []byte("GOIPA-MPATH-1")), designator(0, 0x3, naa5)), "35000c500a1b2c3d4", false},
		{"NAA Registered Extended wins over Registered", vpd83(designator(0, 0x3, naa5), designator(0, 0x3, naa6)), "3600a0b8000112233445566778899aabb", false},
		{"EUI-64", vpd83(designator(0, 0x2, eui)), "2002538b571b04c1d", false},
		{"NAA beats EUI-64 whatever the order", vpd83(designator(0, 0x2, eui), designator(0, 0x3, naa5)), "35000c500a1b2c3d4", false},
		{"T10 vendor id: blank runs become one underscore", vpd83(designator(0, 0x1, t10)), "1ATA_QEMU_HARDDISK_QM00001", false},
		{"EUI-64 beats T10", vpd83(designator(0, 0x1, t10), designator(0, 0x2, eui)), "2002538b571b04c1d", false},
		{"T10 beats NAA locally assigned", vpd83(designator(0, 0x3, naa3), designator(0, 0x1, t10)), "1ATA_QEMU_HARDDISK_QM00001", false},
		{"NAA locally assigned alone", vpd83(designator(0, 0x3, naa3)), "33001020304050607", false},
		{"SCSI name string naa. lower-cased", vpd83(designator(0, 0x8, []byte("naa.5000C500A1B2C3D4\x00\x00\x00\x00"))), "35000c500a1b2c3d4", false},
		{"SCSI name string iqn. keeps case", vpd83(designator(0, 0x8, []byte("iqn.2004-10.com.Example:lun1\x00\x00\x00\x00"))), "82004-10.com.Example:lun1", false},
		{"target port association ignored", vpd83(designator(0x10, 0x3, naa5)), "", true},
		{"vendor specific only", vpd83(designator(0, 0x0, []byte("GOIPA-MPATH-1"))), "", true},
		{"NAA of the wrong length", vpd83(designator(0, 0x3, naa5[:6])), "", true},
		{"designator past the page's end", append(vpd83(designator(0, 0x3, naa5))[:8], 0x50), "", true},
		{"another page", []byte{0, 0x80, 0, 4, 'a', 'b', 'c', 'd'}, "", true},
		{"empty", nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVPD83(tc.page)
			if tc.err {
				if !errors.Is(err, ErrNoWWID) {
					t.Errorf("got %q, %v; want ErrNoWWID", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseVPD83(f *testing.F) {
	f.Add(vpd83(designator(0, 0x3, []byte{0x50, 0, 0xc5, 0, 1, 2, 3, 4})))
	f.Add(vpd83(designator(0, 0x1, []byte("ATA     QEMU HARDDISK   QM00001"))))
	f.Add(vpd83(designator(0, 0x8, []byte("naa.5000C500"))))
	f.Add([]byte{0, 0x83, 0xff, 0xff, 1, 3, 0, 200})
	f.Fuzz(func(t *testing.T, page []byte) {
		w, err := ParseVPD83(page)
		if err != nil {
			if w != "" {
				t.Fatalf("error %v with WWID %q", err, w)
			}
			return
		}
		// A WWID names a device-mapper device: bounded, printable, no '/'.
		if len(w) < 2 || len(w) >= wwidSize || !printable(w) {
			t.Fatalf("WWID %q unusable as a device-mapper name", w)
		}
		if c := w[0]; c != '1' && c != '2' && c != '3' && c != '8' {
			t.Fatalf("WWID %q starts with no designator type", w)
		}
	})
}

func TestWWIDFromSysfs(t *testing.T) {
	for in, want := range map[string]string{
		"naa.5000C500A1B2C3D4\n":               "35000c500a1b2c3d4",
		"eui.0025388b71b04c1d":                 "20025388b71b04c1d",
		"t10.ATA     QEMU HARDDISK   QM00001 ": "1ATA_QEMU_HARDDISK_QM00001",
		"nvme.1b36-3132-51454d55":              "",
		"":                                     "",
		"naa.":                                 "",
	} {
		if got := WWIDFromSysfs(in); got != want {
			t.Errorf("WWIDFromSysfs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMultipathWWIDFromUUIDAndWWN(t *testing.T) {
	for _, tc := range []struct {
		uuid, wwid, wwn string
		ok              bool
	}{
		{"mpath-35000c500a1b2c3d4", "35000c500a1b2c3d4", "0x5000c500a1b2c3d4", true},
		{"MPATH-3600a0b80001122", "3600a0b80001122", "0x600a0b80001122", true},
		{"mpath-1ATA_QEMU_HARDDISK_QM00001", "1ATA_QEMU_HARDDISK_QM00001", "", true},
		{"part1-mpath-35000c500a1b2c3d4", "", "", false},
		{"LVM-abcdef", "", "", false},
		{"mpath-", "", "", false},
		{"", "", "", false},
	} {
		w, ok := MultipathWWIDFromUUID(tc.uuid)
		if w != tc.wwid || ok != tc.ok {
			t.Errorf("MultipathWWIDFromUUID(%q) = %q, %v; want %q, %v", tc.uuid, w, ok, tc.wwid, tc.ok)
		}
		if ok {
			if got := MultipathWWN(w); got != tc.wwn {
				t.Errorf("MultipathWWN(%q) = %q, want %q", w, got, tc.wwn)
			}
		}
	}
}

func TestGroupByWWID(t *testing.T) {
	a := MultipathPath{Name: "sda", DevNo: "8:0", WWID: "3600a"}
	b := MultipathPath{Name: "sdb", DevNo: "8:16", WWID: "3600b"}
	c := MultipathPath{Name: "sdc", DevNo: "8:32", WWID: "3600a"}
	d := MultipathPath{Name: "sdaa", DevNo: "65:160", WWID: "3600b"}
	e := MultipathPath{Name: "sde", DevNo: "8:64", WWID: "3600b"}
	none := MultipathPath{Name: "sdf", DevNo: "8:80"}
	for _, tc := range []struct {
		name  string
		paths []MultipathPath
		want  []MultipathGroup
	}{
		{"no paths", nil, nil},
		{"each LUN once: no map", []MultipathPath{a, b}, nil},
		{"disks without a WWID are never grouped", []MultipathPath{none, {Name: "sdg", DevNo: "8:96"}}, nil},
		{"two LUNs, paths in kernel order", []MultipathPath{d, c, b, none, a, e},
			[]MultipathGroup{{WWID: "3600a", Paths: []MultipathPath{a, c}}, {WWID: "3600b", Paths: []MultipathPath{b, e, d}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := GroupByWWID(tc.paths); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMultipathTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sectors uint64
		devnos  []string
		want    string
		err     bool
	}{
		{"two paths", 524288, []string{"8:0", "8:16"}, "0 0 1 1 service-time 0 2 1 8:0 1 8:16 1", false},
		{"four paths", 1 << 30, []string{"8:0", "8:16", "65:0", "259:3"}, "0 0 1 1 service-time 0 4 1 8:0 1 8:16 1 65:0 1 259:3 1", false},
		{"no size", 0, []string{"8:0"}, "", true},
		{"no paths", 8, nil, "", true},
		{"a path that is not a device number", 8, []string{"sda"}, "", true},
		{"a minor that is not a number", 8, []string{"8:x"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, params, err := MultipathTable(tc.sectors, tc.devnos)
			if tc.err {
				if err == nil {
					t.Errorf("got %q %q, want an error", typ, params)
				}
				return
			}
			if err != nil || typ != "multipath" || params != tc.want {
				t.Errorf("got %q %q %v, want multipath %q", typ, params, err, tc.want)
			}
		})
	}
}
