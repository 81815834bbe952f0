package firmware

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// devlink's generic netlink commands and attributes (linux/devlink.h);
// vishvananda/netlink/nl names the older ones, the flash ones are added
// here.
const (
	devlinkCmdReload            = 37
	devlinkCmdInfoGet           = nl.DEVLINK_CMD_INFO_GET // 51
	devlinkCmdFlashUpdate       = 58
	devlinkCmdFlashUpdateEnd    = 59
	devlinkCmdFlashUpdateStatus = 60

	devlinkAttrBusName             = nl.DEVLINK_ATTR_BUS_NAME // 1
	devlinkAttrDevName             = nl.DEVLINK_ATTR_DEV_NAME // 2
	devlinkAttrInfoDriverName      = 98
	devlinkAttrInfoSerialNumber    = 99
	devlinkAttrInfoVersionFixed    = 100
	devlinkAttrInfoVersionRunning  = 101
	devlinkAttrInfoVersionStored   = 102
	devlinkAttrInfoVersionName     = 103
	devlinkAttrInfoVersionValue    = 104
	devlinkAttrFlashFileName       = 122
	devlinkAttrFlashComponent      = 123
	devlinkAttrFlashStatusMsg      = 124
	devlinkAttrFlashStatusDone     = 125
	devlinkAttrFlashStatusTotal    = 126
	devlinkAttrFlashStatusTimeout  = 151
	devlinkAttrFlashOverwriteMask  = 152
	devlinkAttrReloadAction        = 153
	devlinkReloadActionFwActivate  = 2
	devlinkGenlVersion             = nl.GENL_DEVLINK_VERSION
	devlinkFamilyName              = nl.GENL_DEVLINK_NAME
	devlinkMulticastConfigGroup    = "config"
	devlinkOverwriteSettings       = 1 << 0
	devlinkOverwriteIdentifiers    = 1 << 1
	devlinkOverwriteMaskAllKnown   = devlinkOverwriteSettings | devlinkOverwriteIdentifiers
	genlHeaderLen                  = 4
	netlinkBitfield32AttributeSize = 8
)

// FlashRequest is one DEVLINK_CMD_FLASH_UPDATE.
type FlashRequest struct {
	Bus, Dev string
	// FileName is the image's name relative to the kernel's firmware
	// search path: the kernel reads the file itself.
	FileName string
	// Component is the devlink component to flash ("" for the driver's
	// default).
	Component string
	// Overwrite is DEVLINK_FLASH_OVERWRITE_* bits (0: keep the device's
	// settings and identifiers, the kernel's default).
	Overwrite uint32
}

// FlashStatus is a DEVLINK_CMD_FLASH_UPDATE_STATUS (or _END)
// notification.
type FlashStatus struct {
	Bus, Dev  string
	End       bool
	Message   string
	Component string
	Done      uint64
	Total     uint64
	// Timeout is how many seconds the driver gives the current stage.
	Timeout uint64
}

// DevlinkInfo is what `devlink dev info` shows.
type DevlinkInfo struct {
	Driver, Serial         string
	Fixed, Running, Stored map[string]string
}

// genlHeader is struct genlmsghdr: command, version, two reserved
// bytes. nl.Genlmsg is not used: its Serialize reads four bytes from
// its two-byte struct, so the reserved bytes carry whatever memory
// follows it.
type genlHeader struct{ cmd, version uint8 }

func (h genlHeader) Len() int          { return genlHeaderLen }
func (h genlHeader) Serialize() []byte { return []byte{h.cmd, h.version, 0, 0} }

// encodeFlash builds the request's generic netlink payload (genl header
// and attributes) for family.
func encodeFlash(family uint16, r FlashRequest) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(family), unix.NLM_F_ACK)
	req.AddData(genlHeader{devlinkCmdFlashUpdate, devlinkGenlVersion})
	req.AddData(nl.NewRtAttr(devlinkAttrBusName, nl.ZeroTerminated(r.Bus)))
	req.AddData(nl.NewRtAttr(devlinkAttrDevName, nl.ZeroTerminated(r.Dev)))
	req.AddData(nl.NewRtAttr(devlinkAttrFlashFileName, nl.ZeroTerminated(r.FileName)))
	if r.Component != "" {
		req.AddData(nl.NewRtAttr(devlinkAttrFlashComponent, nl.ZeroTerminated(r.Component)))
	}
	if r.Overwrite != 0 {
		// struct nla_bitfield32: the value, then the selector of the bits
		// it sets.
		b := make([]byte, netlinkBitfield32AttributeSize)
		binary.NativeEndian.PutUint32(b[0:4], r.Overwrite)
		binary.NativeEndian.PutUint32(b[4:8], devlinkOverwriteMaskAllKnown)
		req.AddData(nl.NewRtAttr(devlinkAttrFlashOverwriteMask, b))
	}
	return req
}

// encodeReload asks for `devlink dev reload <dev> action fw_activate`:
// the driver activates the stored firmware (with the least disruption
// it can: a firmware reset where the device has one).
func encodeReload(family uint16, bus, dev string) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(family), unix.NLM_F_ACK)
	req.AddData(genlHeader{devlinkCmdReload, devlinkGenlVersion})
	req.AddData(nl.NewRtAttr(devlinkAttrBusName, nl.ZeroTerminated(bus)))
	req.AddData(nl.NewRtAttr(devlinkAttrDevName, nl.ZeroTerminated(dev)))
	req.AddData(nl.NewRtAttr(devlinkAttrReloadAction, []byte{devlinkReloadActionFwActivate}))
	return req
}

// encodeInfoGet asks for one device's info.
func encodeInfoGet(family uint16, bus, dev string) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(family), 0)
	req.AddData(genlHeader{devlinkCmdInfoGet, devlinkGenlVersion})
	req.AddData(nl.NewRtAttr(devlinkAttrBusName, nl.ZeroTerminated(bus)))
	req.AddData(nl.NewRtAttr(devlinkAttrDevName, nl.ZeroTerminated(dev)))
	return req
}

func attrString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func attrU64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.NativeEndian.Uint64(b)
}

// decodeFlashStatus reads a devlink notification's payload (genl header
// and attributes); ok is false for other commands.
func decodeFlashStatus(payload []byte) (FlashStatus, bool, error) {
	if len(payload) < genlHeaderLen {
		return FlashStatus{}, false, fmt.Errorf("devlink message of %d bytes", len(payload))
	}
	cmd := payload[0]
	if cmd != devlinkCmdFlashUpdateStatus && cmd != devlinkCmdFlashUpdateEnd {
		return FlashStatus{}, false, nil
	}
	attrs, err := parseAttrs(payload[genlHeaderLen:])
	if err != nil {
		return FlashStatus{}, false, fmt.Errorf("devlink flash status: %w", err)
	}
	s := FlashStatus{End: cmd == devlinkCmdFlashUpdateEnd}
	for _, a := range attrs {
		switch a.Type {
		case devlinkAttrBusName:
			s.Bus = attrString(a.Value)
		case devlinkAttrDevName:
			s.Dev = attrString(a.Value)
		case devlinkAttrFlashStatusMsg:
			s.Message = attrString(a.Value)
		case devlinkAttrFlashComponent:
			s.Component = attrString(a.Value)
		case devlinkAttrFlashStatusDone:
			s.Done = attrU64(a.Value)
		case devlinkAttrFlashStatusTotal:
			s.Total = attrU64(a.Value)
		case devlinkAttrFlashStatusTimeout:
			s.Timeout = attrU64(a.Value)
		}
	}
	return s, true, nil
}

// decodeInfo reads a DEVLINK_CMD_INFO_GET answer's payload.
func decodeInfo(payload []byte) (DevlinkInfo, error) {
	if len(payload) < genlHeaderLen {
		return DevlinkInfo{}, fmt.Errorf("devlink info of %d bytes", len(payload))
	}
	attrs, err := parseAttrs(payload[genlHeaderLen:])
	if err != nil {
		return DevlinkInfo{}, fmt.Errorf("devlink info: %w", err)
	}
	info := DevlinkInfo{Fixed: map[string]string{}, Running: map[string]string{}, Stored: map[string]string{}}
	for _, a := range attrs {
		var into map[string]string
		switch a.Type {
		case devlinkAttrInfoDriverName:
			info.Driver = attrString(a.Value)
		case devlinkAttrInfoSerialNumber:
			info.Serial = attrString(a.Value)
		case devlinkAttrInfoVersionFixed:
			into = info.Fixed
		case devlinkAttrInfoVersionRunning:
			into = info.Running
		case devlinkAttrInfoVersionStored:
			into = info.Stored
		}
		if into == nil {
			continue
		}
		nested, err := parseAttrs(a.Value)
		if err != nil {
			return DevlinkInfo{}, fmt.Errorf("devlink info version: %w", err)
		}
		var name, value string
		for _, n := range nested {
			switch n.Type {
			case devlinkAttrInfoVersionName:
				name = attrString(n.Value)
			case devlinkAttrInfoVersionValue:
				value = attrString(n.Value)
			}
		}
		if name != "" {
			into[name] = value
		}
	}
	return info, nil
}

// netlinkDevlink is the kernel's devlink over generic netlink.
type netlinkDevlink struct{}

func devlinkFamily() (*netlink.GenlFamily, error) {
	fam, err := netlink.GenlFamilyGet(devlinkFamilyName)
	if err != nil {
		return nil, fmt.Errorf("the kernel's devlink generic netlink family: %w", err)
	}
	return fam, nil
}

func (netlinkDevlink) Info(ctx context.Context, bus, dev string) (DevlinkInfo, error) {
	fam, err := devlinkFamily()
	if err != nil {
		return DevlinkInfo{}, err
	}
	msgs, err := encodeInfoGet(fam.ID, bus, dev).Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return DevlinkInfo{}, fmt.Errorf("devlink dev info %s/%s: %w", bus, dev, err)
	}
	if len(msgs) == 0 {
		return DevlinkInfo{}, fmt.Errorf("devlink dev info %s/%s: no answer", bus, dev)
	}
	return decodeInfo(msgs[0])
}

// ActivateFirmware reloads the device with action fw_activate; a driver
// without it answers EOPNOTSUPP.
func (netlinkDevlink) ActivateFirmware(ctx context.Context, bus, dev string) error {
	fam, err := devlinkFamily()
	if err != nil {
		return err
	}
	if _, err := encodeReload(fam.ID, bus, dev).Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return fmt.Errorf("devlink dev reload %s/%s action fw_activate: %w", bus, dev, err)
	}
	return nil
}

// flashEndWait bounds how long Flash waits, once the kernel has
// acknowledged the request, for the device's end notification: the
// kernel sends it before the acknowledgement, so it is already queued
// unless the notification socket overflowed and it was dropped.
const flashEndWait = 2 * time.Second

// notificationBuffer is the notification socket's receive buffer: a
// driver may send hundreds of status notifications in a burst
// (netdevsim: 500 in 5 s), each taking about a kilobyte of socket
// memory, more than the default buffer holds if the reader lags.
const notificationBuffer = 4 << 20

// Flash sends the flash request and passes the device's status
// notifications to progress until the kernel acknowledges the request.
//
// The request and the notifications go through two sockets. The kernel
// runs devlink's flash handler inside the sendmsg that carries the
// request, so the sending goroutine is blocked for the whole flash; a
// socket that also subscribes to devlink's "config" group is read by
// nobody meanwhile, and a driver's burst of status notifications
// overflows its receive buffer. The kernel then drops notifications,
// reports ENOBUFS on the next read (which failed a flash that had
// worked) and may drop the acknowledgement itself (which left the wait
// without an end). So a second socket subscribes to the group and is
// read by its own goroutine while the request socket carries only the
// request and its acknowledgement.
//
// The kernel flashes on its own time: a cancelled ctx stops the
// waiting, not the flash. progress is never called after Flash returns.
func (netlinkDevlink) Flash(ctx context.Context, r FlashRequest, progress func(FlashStatus)) error {
	fam, err := devlinkFamily()
	if err != nil {
		return err
	}
	var group uint32
	for _, g := range fam.Groups {
		if g.Name == devlinkMulticastConfigGroup {
			group = g.ID
		}
	}
	var notes *nl.NetlinkSocket
	if group != 0 {
		if notes, err = nl.Subscribe(unix.NETLINK_GENERIC); err != nil {
			return fmt.Errorf("devlink notification socket: %w", err)
		}
		defer notes.Close()
		if err := unix.SetsockoptInt(notes.GetFd(), unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, int(group)); err != nil {
			return fmt.Errorf("devlink notifications: %w", err)
		}
		// SO_RCVBUFFORCE goes past rmem_max (root only); else the default.
		if notes.SetReceiveBufferSize(notificationBuffer, true) != nil {
			notes.SetReceiveBufferSize(notificationBuffer, false)
		}
	}
	s, err := nl.Subscribe(unix.NETLINK_GENERIC)
	if err != nil {
		return fmt.Errorf("devlink socket: %w", err)
	}

	ended := make(chan struct{})
	followed := make(chan int, 1)
	if notes != nil {
		go func() {
			var once sync.Once
			dropped := followFlash(func() ([]syscall.NetlinkMessage, error) {
				msgs, _, err := notes.Receive()
				return msgs, err
			}, r, progress, func() { once.Do(func() { close(ended) }) })
			followed <- dropped
		}()
	} else {
		close(ended)
		followed <- 0
	}
	stopFollowing := func() int {
		if notes != nil {
			notes.Close()
		}
		return <-followed
	}

	req := encodeFlash(fam.ID, r)
	acked := make(chan error, 1)
	go func() {
		// Blocks in the kernel for as long as the driver flashes.
		defer s.Close()
		if err := s.Send(req); err != nil {
			acked <- fmt.Errorf("devlink flash %s/%s: %w", r.Bus, r.Dev, err)
			return
		}
		acked <- receiveAck(s, req.Seq, r)
	}()
	select {
	case err = <-acked:
	case <-ctx.Done():
		stopFollowing()
		return fmt.Errorf("devlink flash %s/%s: stopped waiting (the device goes on flashing): %w", r.Bus, r.Dev, ctx.Err())
	}
	if err == nil {
		select {
		case <-ended:
		case <-time.After(flashEndWait):
		case <-ctx.Done():
		}
	}
	if dropped := stopFollowing(); dropped > 0 && progress != nil {
		progress(FlashStatus{Bus: r.Bus, Dev: r.Dev, Message: fmt.Sprintf("(the kernel dropped status notifications %d times: the socket was full)", dropped)})
	}
	return err
}

// receiveAck reads the request socket until the request's
// acknowledgement.
func receiveAck(s *nl.NetlinkSocket, seq uint32, r FlashRequest) error {
	for {
		msgs, _, err := s.Receive()
		if err != nil {
			return fmt.Errorf("devlink flash %s/%s: %w", r.Bus, r.Dev, err)
		}
		for _, m := range msgs {
			if done, err := flashAck(m, seq, r); done {
				return err
			}
		}
	}
}

// followFlash passes the device's status notifications that recv
// returns to progress and calls ended at the device's end notification;
// it returns when recv fails otherwise (the socket is closed), with how
// many times the kernel said it dropped notifications (ENOBUFS: the
// socket was full). A dropped notification is lost progress, not a
// failed flash: the acknowledgement on the request socket says how the
// flash went.
func followFlash(recv func() ([]syscall.NetlinkMessage, error), r FlashRequest, progress func(FlashStatus), ended func()) (dropped int) {
	for {
		msgs, err := recv()
		if errors.Is(err, unix.ENOBUFS) {
			dropped++
			continue
		}
		if err != nil {
			return dropped
		}
		for _, m := range msgs {
			st, ok := flashStatusOf(m, r)
			if !ok {
				continue
			}
			if progress != nil {
				progress(st)
			}
			if st.End {
				ended()
			}
		}
	}
}

// flashAck reads a message on the request socket: the request's
// acknowledgement ends the flash (with the kernel's error, if any).
func flashAck(m syscall.NetlinkMessage, seq uint32, r FlashRequest) (bool, error) {
	if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq != seq {
		return false, nil
	}
	if len(m.Data) < 4 {
		return true, fmt.Errorf("devlink flash %s/%s: short acknowledgement", r.Bus, r.Dev)
	}
	if errno := int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
		return true, &FlashError{Device: r.Bus + "/" + r.Dev, Errno: syscall.Errno(-errno)}
	}
	return true, nil
}

// flashStatusOf reads a notification: ok when it is a flash status (or
// end) of the request's device.
func flashStatusOf(m syscall.NetlinkMessage, r FlashRequest) (FlashStatus, bool) {
	switch m.Header.Type {
	case unix.NLMSG_ERROR, unix.NLMSG_DONE, unix.NLMSG_NOOP:
		return FlashStatus{}, false
	}
	st, ok, err := decodeFlashStatus(m.Data)
	if err != nil || !ok || st.Bus != r.Bus || st.Dev != r.Dev {
		return FlashStatus{}, false
	}
	return st, true
}

// FlashError is the kernel's refusal of a flash request: EOPNOTSUPP
// from a driver without flash update, ENOENT for a file not in the
// firmware search path.
type FlashError struct {
	Device string
	Errno  syscall.Errno
}

func (e *FlashError) Error() string {
	if e.Errno == unix.EOPNOTSUPP {
		return fmt.Sprintf("devlink flash %s: the driver does not support flash update (%v)", e.Device, e.Errno)
	}
	return fmt.Sprintf("devlink flash %s: %v", e.Device, e.Errno)
}

func (e *FlashError) Unwrap() error { return e.Errno }

// attr is one netlink attribute (struct nlattr and its payload).
type attr struct {
	Type  uint16
	Value []byte
}

// parseAttrs splits a run of netlink attributes. It is goipa's own
// because vishvananda/netlink's nl.ParseRouteAttr panics on an
// attribute whose length runs past the buffer (the fuzz corpus keeps
// those inputs); the NLA_F_NESTED and byte-order flags are masked off
// the type as the kernel's nla_type does.
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("netlink attribute of length %d in %d bytes", l, len(b))
		}
		out = append(out, attr{Type: binary.NativeEndian.Uint16(b[2:4]) & 0x3fff, Value: b[4:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return out, nil
}
