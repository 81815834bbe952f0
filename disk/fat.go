package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// ReadFAT opens the FAT filesystem (FAT12, 16 or 32: ESPs come in all
// three) of partition p on the open device f, read-only, in Go: reading
// an ESP needs neither the kernel's vfat nor a mount.
func ReadFAT(f *os.File, p Partition, sectorSize int) (fs.FS, error) {
	b := file.New(f, true)
	var errs []error
	if fsys, err := fat32.Read(b, p.Size, p.Start, int64(sectorSize)); err == nil {
		return fsys, nil
	} else {
		errs = append(errs, fmt.Errorf("fat32: %w", err))
	}
	if fsys, err := fat16.Read(b, p.Size, p.Start, int64(sectorSize)); err == nil {
		return fsys, nil
	} else {
		errs = append(errs, fmt.Errorf("fat16: %w", err))
	}
	if fsys, err := fat12.Read(b, p.Size, p.Start, int64(sectorSize)); err == nil {
		return fsys, nil
	} else {
		errs = append(errs, fmt.Errorf("fat12: %w", err))
	}
	return nil, fmt.Errorf("partition %d holds no FAT filesystem: %w", p.Number, errors.Join(errs...))
}
