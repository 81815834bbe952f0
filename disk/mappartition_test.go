package disk

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMapPartitionTarget: a partition of a multipath map is one linear
// target over the map, counted in 512-byte sectors whatever the
// partition's bytes, as kpartx loads it; partitions not on a sector
// boundary are refused rather than mapped off by a fraction.
func TestMapPartitionTarget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devNo   string
		p       Partition
		want    dmTarget
		wantErr bool
	}{
		{"1 MiB aligned", "253:0", Partition{Number: 1, Start: 1 << 20, Size: 550 << 20},
			dmTarget{Length: 1126400, Type: "linear", Params: "253:0 2048"}, false},
		{"4Kn disk", "253:7", Partition{Number: 3, Start: 6 * 4096, Size: 256 * 4096},
			dmTarget{Length: 2048, Type: "linear", Params: "253:7 48"}, false},
		{"at sector 0", "254:12", Partition{Number: 2, Start: 0, Size: 512},
			dmTarget{Length: 1, Type: "linear", Params: "254:12 0"}, false},
		{"odd start", "253:0", Partition{Number: 1, Start: 1000, Size: 4096}, dmTarget{}, true},
		{"odd size", "253:0", Partition{Number: 1, Start: 4096, Size: 1000}, dmTarget{}, true},
		{"empty", "253:0", Partition{Number: 1, Start: 4096}, dmTarget{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mapPartitionTarget(tc.devNo, tc.p)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestMapPartitionNaming: names and UUIDs are kpartx's with the "-part"
// delimiter, and only UUIDs of this map's partitions are taken as its
// own (another map's, LVM's, a bad number are not).
func TestMapPartitionNaming(t *testing.T) {
	const wwid = "3600508b400105e210000900000490000"
	assert.Equal(t, wwid+"-part1", mapPartitionName(wwid, 1))
	assert.Equal(t, wwid+"-part12", mapPartitionName(wwid, 12))
	assert.Equal(t, "part3-mpath-"+wwid, mapPartitionUUID("mpath-"+wwid, 3))
	for _, tc := range []struct {
		uuid string
		n    int
		ok   bool
	}{
		{"part1-mpath-" + wwid, 1, true},
		{"part15-mpath-" + wwid, 15, true},
		{"part1-mpath-3600508b400105e210000900000490001", 0, false},
		{"part0-mpath-" + wwid, 0, false},
		{"part01-mpath-" + wwid, 0, false},
		{"partx-mpath-" + wwid, 0, false},
		{"mpath-" + wwid, 0, false},
		{"LVM-abc", 0, false},
		{"part1-mpath-" + wwid + "-x", 0, false},
	} {
		n, ok := isMapPartitionUUID(tc.uuid, "mpath-"+wwid)
		assert.Equal(t, tc.ok, ok, tc.uuid)
		assert.Equal(t, tc.n, n, tc.uuid)
	}
	// The round trip.
	n, ok := isMapPartitionUUID(mapPartitionUUID("mpath-"+wwid, 7), "mpath-"+wwid)
	assert.True(t, ok)
	assert.Equal(t, 7, n)
}

// FuzzIsMapPartitionUUID: whatever a dm uuid in sysfs says, a UUID
// taken as a map's partition is exactly the one goipa would give that
// partition (so removing "its" partitions never removes another
// device), and the parse never panics.
func FuzzIsMapPartitionUUID(f *testing.F) {
	f.Add("part1-mpath-3600508b400105e210000900000490000", "mpath-3600508b400105e210000900000490000")
	f.Add("part01-mpath-x", "mpath-x")
	f.Add("part-1-mpath-x", "mpath-x")
	f.Add("LVM-abc", "mpath-x")
	f.Fuzz(func(t *testing.T, uuid, mapUUID string) {
		n, ok := isMapPartitionUUID(uuid, mapUUID)
		if !ok {
			return
		}
		if n <= 0 || mapPartitionUUID(mapUUID, n) != uuid {
			t.Fatalf("%q taken as partition %d of %q", uuid, n, mapUUID)
		}
	})
}
