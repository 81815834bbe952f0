package disk

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/goipa/goipa/internal/testenv"
)

// TestPassThroughOnALoopDeviceIsUnsupported sends real SG_IO requests to a
// device that has no SCSI or ATA behind it: both hardware erases must say
// "unsupported" (so the caller falls back), never fail the erase.
func TestPassThroughOnALoopDeviceIsUnsupported(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup")
	dev, _ := loop(t, 8<<20)
	_, err := ATASecureErase(context.Background(), dev, nil)
	assert.ErrorIs(t, err, ErrATASecurityUnsupported)
	_, err = SCSISanitize(context.Background(), dev, 0, nil)
	assert.ErrorIs(t, err, ErrSanitizeUnsupported)
}
