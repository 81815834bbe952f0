package disk

import (
	"fmt"
	"strconv"
	"strings"
)

// The partitions of a dm-multipath map are device-mapper devices of
// their own, as multipath-tools' kpartx makes them: the kernel scans no
// partition table on a dm device. goipa makes them itself (the ramdisk
// has no kpartx and no udev), named as kpartx does with the "-part"
// delimiter that Debian's and Ubuntu's multipath rules pass it
// (/dev/mapper/<map>-part<N>), and with kpartx's UUID (part<N>-<map
// UUID>), by which they are recognised as the map's own.

// mapPartitionName is the device-mapper name of partition n of the map
// named mapName.
func mapPartitionName(mapName string, n int) string {
	return fmt.Sprintf("%s-part%d", mapName, n)
}

// mapPartitionUUID is the device-mapper UUID kpartx gives partition n
// of the map whose UUID is mapUUID.
func mapPartitionUUID(mapUUID string, n int) string {
	return fmt.Sprintf("part%d-%s", n, mapUUID)
}

// isMapPartitionUUID reports whether uuid is that of a partition of the
// map whose UUID is mapUUID, and which.
func isMapPartitionUUID(uuid, mapUUID string) (int, bool) {
	rest, ok := strings.CutPrefix(uuid, "part")
	if !ok {
		return 0, false
	}
	num, tail, ok := strings.Cut(rest, "-")
	if !ok || tail != mapUUID {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || strconv.Itoa(n) != num {
		return 0, false
	}
	return n, true
}

// mapPartitionTarget is the one-line table of partition p (bytes) of
// the map with device number "major:minor": a linear mapping in
// 512-byte sectors, whatever the map's logical block size.
func mapPartitionTarget(mapDevNo string, p Partition) (dmTarget, error) {
	if p.Start < 0 || p.Size <= 0 || p.Start%512 != 0 || p.Size%512 != 0 {
		return dmTarget{}, fmt.Errorf("partition %d (%d bytes at %d) is not whole 512-byte sectors", p.Number, p.Size, p.Start)
	}
	return dmTarget{
		Start:  0,
		Length: uint64(p.Size / 512),
		Type:   "linear",
		Params: fmt.Sprintf("%s %d", mapDevNo, p.Start/512),
	}, nil
}
