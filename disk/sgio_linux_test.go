package disk

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestSGIOHdrLayout pins struct sg_io_hdr's 64-bit layout (scsi/sg.h):
// a shifted field would send the kernel garbage pointers.
func TestSGIOHdrLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout below is the 64-bit one")
	}
	var h sgIOHdr
	assert.Equal(t, uintptr(88), unsafe.Sizeof(h))
	for name, got := range map[string][2]uintptr{
		"dxfer_len": {unsafe.Offsetof(h.DxferLen), 12}, "dxferp": {unsafe.Offsetof(h.Dxferp), 16},
		"cmdp": {unsafe.Offsetof(h.Cmdp), 24}, "sbp": {unsafe.Offsetof(h.Sbp), 32},
		"timeout": {unsafe.Offsetof(h.Timeout), 40}, "pack_id": {unsafe.Offsetof(h.PackID), 48},
		"usr_ptr": {unsafe.Offsetof(h.UsrPtr), 56}, "status": {unsafe.Offsetof(h.Status), 64},
		"sb_len_wr": {unsafe.Offsetof(h.SbLenWr), 67}, "host_status": {unsafe.Offsetof(h.HostStatus), 68},
		"resid": {unsafe.Offsetof(h.Resid), 72}, "info": {unsafe.Offsetof(h.Info), 80},
	} {
		assert.Equal(t, got[1], got[0], name)
	}
}
