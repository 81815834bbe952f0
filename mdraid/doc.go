// Package mdraid builds Linux software RAID (md) arrays without mdadm:
// it writes and reads the version-1 md superblock
// (include/uapi/linux/raid/md_p.h, struct mdp_superblock_1), plans the
// member partitions the way ironic-python-agent lays them out, and
// hands the members to the kernel's md driver through its ioctls
// (SET_ARRAY_INFO, ADD_NEW_DISK, RUN_ARRAY, STOP_ARRAY), which is what
// mdadm does underneath.
//
// IPA creates arrays with `mdadm --create --metadata=1`; mdadm reads a
// bare "1" as "the default 1.x", which is 1.2 (superblock 4 KiB from the
// start of the member, data after it). The ESP mirror IPA makes for UEFI
// uses 1.0 (superblock at the end), so firmware sees a plain FAT
// filesystem on each member; both are supported here.
//
// Only RAID-0 and RAID-1 are built; other levels get an error naming
// them before any disk is touched.
package mdraid
