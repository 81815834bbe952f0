package firmware

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// unhex reads a fixture written as the bytes appear on the socket
// (spaces and line breaks ignored). The layouts are linux/netlink.h's
// nlmsghdr and nlattr, genetlink.h's genlmsghdr and devlink.h's
// attribute numbers, little-endian as on x86-64 and arm64.
func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

// The request `devlink dev flash pci/0000:3b:00.0 file fw.bin component
// fw.mgmt overwrite settings overwrite identifiers` sends, devlink's
// family being 0x15 and the sequence number 1.
const flashRequestBytes = `
54000000 1500 0500 01000000 00000000
3a010000
08000100 70636900
11000200 303030303a33623a30302e30 00 000000
0b007a00 66772e62696e00 00
0c007b00 66772e6d676d7400
0c009800 03000000 03000000`

func TestEncodeFlash(t *testing.T) {
	req := encodeFlash(0x15, FlashRequest{Bus: "pci", Dev: "0000:3b:00.0", FileName: "fw.bin", Component: "fw.mgmt",
		Overwrite: devlinkOverwriteSettings | devlinkOverwriteIdentifiers})
	req.Seq = 1
	assert.Equal(t, hex.EncodeToString(unhex(t, flashRequestBytes)), hex.EncodeToString(req.Serialize()))

	// Without component and overwrite mask, neither attribute is sent.
	req = encodeFlash(0x15, FlashRequest{Bus: "netdevsim", Dev: "netdevsim1", FileName: "a.bin"})
	req.Seq = 2
	b := req.Serialize()
	assert.Equal(t, uint32(len(b)), uint32(b[0])|uint32(b[1])<<8)
	assert.NotContains(t, string(b), "\x7b\x00")
	assert.Contains(t, string(b), "\x0a\x00\x7a\x00a.bin\x00")
}

func TestEncodeReload(t *testing.T) {
	req := encodeReload(0x15, "netdevsim", "netdevsim1")
	req.Seq = 3
	// DEVLINK_ATTR_RELOAD_ACTION (153) is a u8: DEVLINK_RELOAD_ACTION_FW_ACTIVATE.
	assert.Equal(t, hex.EncodeToString(unhex(t, `
3c000000 1500 0500 03000000 00000000
25010000
0e000100 6e657464657673696d00 0000
0f000200 6e657464657673696d31 00 00
05009900 02 000000`)), hex.EncodeToString(req.Serialize()))
}

func TestEncodeInfoGet(t *testing.T) {
	req := encodeInfoGet(0x15, "pci", "0000:3b:00.0")
	req.Seq = 7
	assert.Equal(t, `3000000015000100070000000000000033010000080001007063690011000200303030303a33623a30302e3000000000`,
		hex.EncodeToString(req.Serialize()))
}

// A DEVLINK_CMD_FLASH_UPDATE_STATUS from netdevsim1 (genl header and
// attributes): "Flashing", component fw.mgmt, 5 of 10, timeout 0.
const flashStatusBytes = `
3c010000
0e000100 6e657464657673696d00 0000
0f000200 6e657464657673696d31 00 00
0d007c00 466c617368696e67 00 000000
0c007b00 66772e6d676d7400
0c007d00 0500000000000000
0c007e00 0a00000000000000
0c009700 0000000000000000`

// The _END that follows: bus and dev only.
const flashEndBytes = `
3b010000
0e000100 6e657464657673696d00 0000
0f000200 6e657464657673696d31 00 00`

func TestDecodeFlashStatus(t *testing.T) {
	st, ok, err := decodeFlashStatus(unhex(t, flashStatusBytes))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, FlashStatus{Bus: "netdevsim", Dev: "netdevsim1", Message: "Flashing", Component: "fw.mgmt", Done: 5, Total: 10}, st)
	st, ok, err = decodeFlashStatus(unhex(t, flashEndBytes))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, FlashStatus{Bus: "netdevsim", Dev: "netdevsim1", End: true}, st)
	// Other devlink notifications on the same group are not progress.
	_, ok, err = decodeFlashStatus(unhex(t, "01010000"))
	assert.NoError(t, err)
	assert.False(t, ok)
}

// A DEVLINK_CMD_INFO_GET answer: driver, serial, a fixed version, and
// running and stored fw.mgmt.
const infoBytes = `
33010000
0e000100 6e657464657673696d00 0000
0f000200 6e657464657673696d31 00 00
0e006200 6e657464657673696d00 0000
08006300 31323300
18006400 0c006700 617369632e696400 08006800 30303100
1c006500 0c006700 66772e6d676d7400 09006800 31302e3000 000000
1c006600 0c006700 66772e6d676d7400 09006800 31312e3000 000000`

func TestDecodeInfo(t *testing.T) {
	info, err := decodeInfo(unhex(t, infoBytes))
	require.NoError(t, err)
	assert.Equal(t, DevlinkInfo{Driver: "netdevsim", Serial: "123",
		Fixed: map[string]string{"asic.id": "001"}, Running: map[string]string{"fw.mgmt": "10.0"}, Stored: map[string]string{"fw.mgmt": "11.0"}}, info)
	assert.Equal(t, "10.0", runningVersion(info, "fw.mgmt"))
	assert.Equal(t, "10.0", runningVersion(info, ""))
}

func TestFlashAck(t *testing.T) {
	r := FlashRequest{Bus: "netdevsim", Dev: "netdevsim1"}
	status := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: 0x15, Seq: 9}, Data: unhex(t, flashStatusBytes)}
	done, err := flashAck(status, 9, r)
	assert.False(t, done, "a notification is no acknowledgement")
	assert.NoError(t, err)

	ack := func(seq uint32, errno int32) syscall.NetlinkMessage {
		d := make([]byte, 20)
		d[0], d[1], d[2], d[3] = byte(errno), byte(errno>>8), byte(errno>>16), byte(errno>>24)
		return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_ERROR, Seq: seq}, Data: d}
	}
	done, _ = flashAck(ack(8, 0), 9, r)
	assert.False(t, done, "another request's ack")
	done, err = flashAck(ack(9, 0), 9, r)
	assert.True(t, done)
	assert.NoError(t, err)
	done, err = flashAck(ack(9, -int32(unix.EOPNOTSUPP)), 9, r)
	assert.True(t, done)
	var fe *FlashError
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, err, unix.EOPNOTSUPP)
	assert.Contains(t, err.Error(), "does not support flash update")
}

// followFlash reads the notification socket: the device's statuses
// become progress, other devices' are skipped, an overflow (ENOBUFS,
// which the kernel reports on the read after it dropped notifications)
// is counted and reading goes on, and the end notification is reported
// while reading continues until the socket is closed.
func TestFollowFlash(t *testing.T) {
	r := FlashRequest{Bus: "netdevsim", Dev: "netdevsim1"}
	status := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: 0x15}, Data: unhex(t, flashStatusBytes)}
	end := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: 0x15}, Data: unhex(t, flashEndBytes)}
	other := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: 0x15}, Data: bytes.Replace(unhex(t, flashStatusBytes), []byte("netdevsim1"), []byte("netdevsim2"), 1)}
	done := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_DONE}}
	reads := []struct {
		msgs []syscall.NetlinkMessage
		err  error
	}{
		{msgs: []syscall.NetlinkMessage{status, other}},
		{err: unix.ENOBUFS},
		{msgs: []syscall.NetlinkMessage{done, status}},
		{err: unix.ENOBUFS},
		{msgs: []syscall.NetlinkMessage{end}},
		{err: os.ErrClosed},
		{msgs: []syscall.NetlinkMessage{status}}, // never read: the socket was closed
	}
	i := 0
	recv := func() ([]syscall.NetlinkMessage, error) {
		rd := reads[i]
		i++
		return rd.msgs, rd.err
	}
	var got []FlashStatus
	ended := 0
	dropped := followFlash(recv, r, func(s FlashStatus) { got = append(got, s) }, func() { ended++ })
	assert.Equal(t, 2, dropped)
	assert.Equal(t, 1, ended)
	assert.Equal(t, 6, i, "reading stops at the closed socket")
	require.Len(t, got, 3)
	assert.Equal(t, FlashStatus{Bus: "netdevsim", Dev: "netdevsim1", Message: "Flashing", Component: "fw.mgmt", Done: 5, Total: 10}, got[0])
	assert.True(t, got[2].End)
}

func FuzzDecodeFlashStatus(f *testing.F) {
	f.Add(unhex(f, flashStatusBytes))
	f.Add(unhex(f, flashEndBytes))
	f.Add([]byte{0x3c, 1, 0, 0, 0xff, 0xff, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok, err := decodeFlashStatus(b)
		if err != nil || !ok {
			return
		}
		if st.End != (b[0] == devlinkCmdFlashUpdateEnd) {
			t.Fatal("end flag")
		}
	})
}

func FuzzDecodeInfo(f *testing.F) {
	f.Add(unhex(f, infoBytes))
	f.Add([]byte{0x33, 1, 0, 0, 8, 0, 0x65, 0, 4, 0, 0x67, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := decodeInfo(b)
		if err != nil {
			return
		}
		for k := range info.Running {
			if k == "" {
				t.Fatal("empty version name")
			}
		}
	})
}
