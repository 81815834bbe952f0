package redfishbmc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeQEMU answers QMP on a unix socket as QEMU does: a greeting, then one
// answer per command, with an event sent before the answer to "quit".
func fakeQEMU(t *testing.T) (string, chan []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	got := make(chan []string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}` + "\n"))
		var cmds []string
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var req struct {
				Execute   string
				Arguments map[string]any
			}
			json.Unmarshal(sc.Bytes(), &req)
			cmds = append(cmds, req.Execute)
			switch req.Execute {
			case "qmp_capabilities":
				c.Write([]byte(`{"return": {}}` + "\n"))
			case "query-status":
				c.Write([]byte(`{"return": {"status": "running", "running": true}}` + "\n"))
			case "eject":
				c.Write([]byte(`{"error": {"class": "GenericError", "desc": "Device 'x' not found"}}` + "\n"))
			case "quit":
				c.Write([]byte(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}` + "\n"))
				c.Write([]byte(`{"return": {}}` + "\n"))
				got <- cmds
				return
			}
		}
	}()
	return sock, got
}

func TestQMPClient(t *testing.T) {
	sock, got := fakeQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events := make(chan qmpEvent, 4)
	c, err := dialQMP(ctx, sock, func(e qmpEvent) { events <- e })
	require.NoError(t, err)
	defer c.close()

	ret, err := c.execute(ctx, "query-status", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"status": "running", "running": true}`, string(ret))

	_, err = c.execute(ctx, "eject", map[string]any{"id": "x", "force": true})
	var qe *QMPError
	require.True(t, errors.As(err, &qe), "%v", err)
	assert.Equal(t, "GenericError", qe.Class)
	assert.Contains(t, err.Error(), "not found")

	_, err = c.execute(ctx, "quit", nil)
	require.NoError(t, err)
	e := <-events
	assert.Equal(t, "SHUTDOWN", e.Name)
	assert.Contains(t, string(e.Data), "host-qmp-quit")
	assert.Equal(t, []string{"qmp_capabilities", "query-status", "eject", "quit"}, <-got)

	_, err = c.execute(ctx, "query-status", nil)
	assert.ErrorIs(t, err, errQMPClosed)
}

func TestQMPDialGivesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := dialQMP(ctx, filepath.Join(t.TempDir(), "none.sock"), nil)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestQMPRefusesANonQMPPeer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("SSH-2.0-OpenSSH\n"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = dialQMP(ctx, sock, nil)
	assert.ErrorContains(t, err, "QMP greeting")
}

// TestBootOrder checks the devices' bootindex per override target: the
// order SeaBIOS and OVMF follow.
func TestBootOrder(t *testing.T) {
	disks := []string{"/d/a.img", "/d/b.img"}
	for _, tc := range []struct {
		c    BootConfig
		want []string // devices in boot order
	}{
		{BootConfig{Target: TargetCd, CD: "/d/x.iso"}, []string{"ide-cd", "bmcdisk0", "bmcdisk1"}},
		{BootConfig{Target: TargetHdd, CD: "/d/x.iso"}, []string{"bmcdisk0", "bmcdisk1", "ide-cd"}},
		{BootConfig{Target: TargetNone}, []string{"bmcdisk0", "bmcdisk1", "ide-cd"}},
		{BootConfig{Target: TargetPxe}, []string{"bmcdisk0", "bmcdisk1", "ide-cd"}}, // the NIC is bootindex 0 (StartVM's NetBoot)
	} {
		t.Run(tc.c.Target, func(t *testing.T) {
			args := qemuArgs(tc.c, disks, "/d/qmp.sock")
			assert.Equal(t, []string{"-qmp", "unix:/d/qmp.sock,server=on,wait=off"}, args[:2])
			order := map[int]string{}
			var drives []string
			for i := 2; i+1 < len(args); i += 2 {
				v := args[i+1]
				switch args[i] {
				case "-device":
					var idx int
					_, err := fmtSscanBootindex(v, &idx)
					require.NoError(t, err, v)
					name := "ide-cd"
					if strings.HasPrefix(v, "virtio-blk-pci") {
						name = strings.TrimPrefix(strings.Split(v, ",")[1], "drive=")
					}
					order[idx] = name
				case "-drive":
					drives = append(drives, v)
				}
			}
			var got []string
			for i := 1; i <= len(order); i++ {
				got = append(got, order[i])
			}
			assert.Equal(t, tc.want, got)
			cd := drives[len(drives)-1]
			if tc.c.Target == TargetCd {
				cd = drives[0]
			}
			if tc.c.CD != "" {
				assert.Contains(t, cd, "file="+tc.c.CD)
			} else {
				assert.NotContains(t, cd, "file=", "an empty drive")
			}
		})
	}
}

func fmtSscanBootindex(device string, idx *int) (int, error) {
	for _, p := range strings.Split(device, ",") {
		if v, ok := strings.CutPrefix(p, "bootindex="); ok {
			return 1, json.Unmarshal([]byte(v), idx)
		}
	}
	return 0, errors.New("no bootindex")
}
