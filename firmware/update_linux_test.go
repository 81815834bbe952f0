package firmware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/goipa/goipa/image"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeNVMe records every command that would reach the controller.
type fakeNVMe struct {
	id       []byte
	log      []byte
	logAfter []byte
	sent     []string // downloads and commits: what changes the device
	image    []byte
	pending  bool
}

func (f *fakeNVMe) Identify(context.Context) ([]byte, error) { return f.id, nil }
func (f *fakeNVMe) SlotLog(context.Context) ([]byte, error) {
	if len(f.sent) > 0 && f.logAfter != nil {
		return f.logAfter, nil
	}
	return f.log, nil
}
func (f *fakeNVMe) MPSMIN() uint8 { return 0 }
func (f *fakeNVMe) Download(_ context.Context, c Chunk, data []byte) error {
	f.sent = append(f.sent, "download "+strconv.FormatInt(c.Offset, 10)+"+"+strconv.FormatInt(c.Length, 10))
	f.image = append(f.image, data...)
	return nil
}
func (f *fakeNVMe) Commit(_ context.Context, slot int, a CommitAction) (bool, error) {
	f.sent = append(f.sent, "commit "+strconv.Itoa(slot)+" "+strconv.Itoa(int(a)))
	return f.pending, nil
}
func (f *fakeNVMe) Close() error { return nil }

type fakeDevlink struct {
	info, after DevlinkInfo
	flashes     []FlashRequest
	infoErr     error
	activated   []string
	activateErr error
}

func (d *fakeDevlink) ActivateFirmware(_ context.Context, bus, dev string) error {
	d.activated = append(d.activated, bus+"/"+dev)
	if d.activateErr == nil {
		d.after.Running = d.after.Stored
	}
	return d.activateErr
}

func (d *fakeDevlink) Info(_ context.Context, bus, dev string) (DevlinkInfo, error) {
	if d.infoErr != nil {
		return DevlinkInfo{}, d.infoErr
	}
	if len(d.flashes) > 0 {
		return d.after, nil
	}
	return d.info, nil
}
func (d *fakeDevlink) Flash(_ context.Context, r FlashRequest, progress func(FlashStatus)) error {
	d.flashes = append(d.flashes, r)
	progress(FlashStatus{Bus: r.Bus, Dev: r.Dev, Message: "Flashing", Component: r.Component, Done: 50, Total: 100})
	progress(FlashStatus{Bus: r.Bus, Dev: r.Dev, End: true})
	return nil
}

// fakeSys makes a sysfs with nvme0 (serial S123, PCI 0000:01:00.0) and
// eth2 (MAC 52:54:00:12:34:56) on PCI 0000:3b:00.0.
func fakeSys(t *testing.T) string {
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	mk := func(p string) string {
		p = filepath.Join(sys, p)
		require.NoError(t, os.MkdirAll(p, 0o755))
		return p
	}
	write := func(p, s string) { require.NoError(t, os.WriteFile(filepath.Join(sys, p), []byte(s), 0o644)) }
	link := func(target, name string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(sys, name)), 0o755))
		require.NoError(t, os.Symlink(filepath.Join(sys, target), filepath.Join(sys, name)))
	}
	mk("bus/pci/devices")
	mk("devices/pci0000:00/0000:01:00.0/nvme/nvme0")
	mk("devices/pci0000:00/0000:3b:00.0/net/eth2")
	link("devices/pci0000:00/0000:01:00.0", "bus/pci/devices/0000:01:00.0")
	link("devices/pci0000:00/0000:3b:00.0", "bus/pci/devices/0000:3b:00.0")
	link("bus/pci", "devices/pci0000:00/0000:3b:00.0/subsystem")
	link("devices/pci0000:00/0000:01:00.0/nvme/nvme0", "class/nvme/nvme0")
	link("devices/pci0000:00/0000:3b:00.0/net/eth2", "class/net/eth2")
	link("devices/pci0000:00/0000:3b:00.0", "devices/pci0000:00/0000:3b:00.0/net/eth2/device")
	write("class/nvme/nvme0/serial", "S123    \n")
	write("class/net/eth2/address", "52:54:00:12:34:56\n")
	mk("devices/virtual/net/lo")
	link("devices/virtual/net/lo", "class/net/lo")
	return root
}

func TestResolve(t *testing.T) {
	root := fakeSys(t)
	nvme := Device{Kind: KindNVMe, Name: "nvme0"}
	nic := Device{Kind: KindDevlink, Name: "pci/0000:3b:00.0", Bus: "pci", Dev: "0000:3b:00.0"}
	for target, want := range map[string]Device{
		"nvme0": nvme, "S123": nvme, "0000:01:00.0": nvme,
		"eth2": nic, "52:54:00:12:34:56": nic, "52:54:00:12:34:56 ": nic, "0000:3B:00.0": nic,
	} {
		got, err := Resolve(root, target)
		require.NoError(t, err, target)
		assert.Equal(t, want, got, target)
	}
	for _, target := range []string{"nvme1", "eth9", "aa:bb:cc:dd:ee:ff", "0000:99:00.0", "", "../etc", "lo", "nope"} {
		_, err := Resolve(root, target)
		assert.ErrorIs(t, err, ErrUnknownTarget, target)
	}
}

type fixture struct {
	root  string
	nvme  *fakeNVMe
	dl    *fakeDevlink
	srv   *httptest.Server
	fw    []byte
	sum   string
	stage string
	prog  []Progress
}

func newFixture(t *testing.T) *fixture {
	fw := make([]byte, 300<<10)
	for i := range fw {
		fw[i] = byte(i * 7)
	}
	h := sha256.Sum256(fw)
	f := &fixture{root: fakeSys(t), fw: fw, sum: "sha256:" + hex.EncodeToString(h[:]), stage: filepath.Join(t.TempDir(), "stage"),
		nvme: &fakeNVMe{id: identify(0x0004, 0x1|3<<1|1<<4, 5, 0), log: slotLog(1, 0, "1.0"), logAfter: slotLog(2, 0, "1.0", "2.0")},
		dl: &fakeDevlink{info: DevlinkInfo{Running: map[string]string{"fw": "1.0"}, Stored: map[string]string{"fw": "1.0"}},
			after: DevlinkInfo{Running: map[string]string{"fw": "1.0"}, Stored: map[string]string{"fw": "2.0"}}}}
	mux := http.NewServeMux()
	mux.HandleFunc("/fw.bin", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(fw))
	})
	// A server that promises the whole image and drops the connection
	// halfway, every time.
	mux.HandleFunc("/broken.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(fw)))
		w.Write(fw[:len(fw)/2])
		panic(http.ErrAbortHandler)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) updater() *Updater {
	return New(WithRoot(f.root), WithHTTPClient(f.srv.Client()), WithStageDir(f.stage),
		WithRetry(image.Retry{Attempts: 1, Interval: time.Millisecond}),
		WithNVMe(func(root, name string) (NVMeDevice, error) { return f.nvme, nil }), WithDevlink(f.dl),
		WithProgress(func(p Progress) { f.prog = append(f.prog, p) }))
}

func TestUpdateNVMe(t *testing.T) {
	for _, tc := range []struct {
		activate, wantAfter string
		pending             bool
		commit              string
	}{
		{"", PendingReset, false, "commit 2 1"},
		{"now", "2.0", false, "commit 2 3"},
		{"now", PendingReset, true, "commit 2 3"},
	} {
		t.Run(tc.activate+strconv.FormatBool(tc.pending), func(t *testing.T) {
			f := newFixture(t)
			f.nvme.pending = tc.pending
			reps, err := f.updater().Update(context.Background(), []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "S123", Activate: tc.activate}})
			require.NoError(t, err)
			// 300 KiB in MDTS 2^5 * 4 KiB = 128 KiB commands, to the first
			// writable slot (slot 1 is read-only).
			assert.Equal(t, []string{"download 0+131072", "download 131072+131072", "download 262144+45056", tc.commit}, f.nvme.sent)
			assert.Equal(t, f.fw, f.nvme.image)
			require.Len(t, reps, 1)
			r := reps[0]
			assert.Equal(t, "nvme0", r.Device)
			assert.Equal(t, "1.0", r.VersionBefore)
			assert.Equal(t, tc.wantAfter, r.VersionAfter)
			assert.Equal(t, f.sum, r.Checksum)
			assert.Equal(t, map[string]string{"1": "1.0", "2": "2.0"}, r.After)
			assert.Equal(t, int64(len(f.fw)), f.prog[2].Done)
			ents, _ := os.ReadDir(f.stage)
			assert.Empty(t, ents, "the staged image is removed")
		})
	}
}

func TestUpdateDevlinkActivateNow(t *testing.T) {
	f := newFixture(t)
	reps, err := f.updater().Update(context.Background(), []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "eth2", Activate: "now"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"pci/0000:3b:00.0"}, f.dl.activated)
	assert.Equal(t, "2.0", reps[0].VersionAfter)

	f = newFixture(t)
	f.dl.activateErr = errors.New("operation not supported")
	_, err = f.updater().Update(context.Background(), []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "eth2", Activate: "now"}})
	assert.ErrorContains(t, err, "flashed, but activating it failed (it runs after the next reset): operation not supported")
}

func TestUpdateDevlink(t *testing.T) {
	f := newFixture(t)
	reps, err := f.updater().Update(context.Background(), []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum[7:], Target: "52:54:00:12:34:56", Component: "fw.mgmt"}})
	require.NoError(t, err)
	require.Len(t, f.dl.flashes, 1)
	fl := f.dl.flashes[0]
	assert.Equal(t, "pci", fl.Bus)
	assert.Equal(t, "0000:3b:00.0", fl.Dev)
	assert.Equal(t, "fw.mgmt", fl.Component)
	assert.Regexp(t, `^goipa-fw-[0-9a-f]{16}\.bin$`, fl.FileName)
	require.Len(t, reps, 1)
	assert.Equal(t, "1.0", reps[0].VersionBefore)
	assert.Equal(t, PendingReset, reps[0].VersionAfter)
	assert.Equal(t, "2.0", reps[0].After["stored.fw"])
	assert.Empty(t, f.dl.activated, "activate reset: no reload")
	assert.Contains(t, f.prog, Progress{Target: "52:54:00:12:34:56", Stage: "flash", Message: "fw.mgmt Flashing", Done: 50, Total: 100})
	assert.Equal(t, Progress{Target: "52:54:00:12:34:56", Stage: "flash", Message: "fw.mgmt Flashing", Done: 50, Total: 100}, f.prog[len(f.prog)-1],
		"the end notification leaves the driver's last status as the progress")
}

// TestUpdateBadInput: every failure before the device is touched sends
// nothing to it.
func TestUpdateBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture) Image
		is    error
		match string
	}{
		{"wrong checksum", func(f *fixture) Image {
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: "sha256:" + hex.EncodeToString(make([]byte, 32)), Target: "nvme0"}
		}, nil, "checksum mismatch"},
		{"wrong checksum, NIC", func(f *fixture) Image {
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: "sha256:" + hex.EncodeToString(make([]byte, 32)), Target: "eth2"}
		}, nil, "checksum mismatch"},
		{"unknown target", func(f *fixture) Image { return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "eth9"} }, ErrUnknownTarget, ""},
		{"controller without firmware download", func(f *fixture) Image {
			f.nvme.id = identify(0x000a, 0x03, 7, 0)
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "nvme0"}
		}, ErrNVMeUnsupported, "OACS bit 2"},
		{"NIC without devlink", func(f *fixture) Image {
			f.dl.infoErr = errors.New("no such device")
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "eth2"}
		}, nil, "has no devlink device"},
		{"URL fails midway", func(f *fixture) Image { return Image{URL: f.srv.URL + "/broken.bin", Checksum: f.sum, Target: "nvme0"} }, nil, "broken.bin"},
		{"URL not found", func(f *fixture) Image {
			return Image{URL: f.srv.URL + "/missing.bin", Checksum: f.sum, Target: "nvme0"}
		}, nil, "404"},
		{"no checksum", func(f *fixture) Image { return Image{URL: f.srv.URL + "/fw.bin", Target: "nvme0"} }, ErrInvalidImage, ""},
		{"checksum none", func(f *fixture) Image { return Image{URL: f.srv.URL + "/fw.bin", Checksum: "none", Target: "nvme0"} }, ErrInvalidImage, ""},
		{"bad activate", func(f *fixture) Image {
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "nvme0", Activate: "later"}
		}, ErrInvalidImage, ""},
		{"read-only slot", func(f *fixture) Image {
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "nvme0", Slot: 1}
		}, ErrNVMeUnsupported, "read-only"},
		{"now without FRMW bit 4", func(f *fixture) Image {
			f.nvme.id = identify(0x0004, 3<<1, 5, 0)
			return Image{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "nvme0", Activate: "now"}
		}, ErrNVMeUnsupported, "activation without reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			img := tc.setup(f)
			// A good image for the NIC first: a later bad one must stop
			// the whole update before the NIC is flashed too.
			images := []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "eth2"}, img}
			if img.Target == "eth2" {
				images = []Image{{URL: f.srv.URL + "/fw.bin", Checksum: f.sum, Target: "nvme0"}, img}
			}
			reps, err := f.updater().Update(context.Background(), images)
			require.Error(t, err)
			t.Log(err)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.Contains(t, err.Error(), tc.match)
			var te *TargetError
			if errors.As(err, &te) {
				assert.Equal(t, img.Target, te.Target)
			}
			assert.Empty(t, reps)
			assert.Empty(t, f.nvme.sent, "nothing sent to the NVMe controller")
			assert.Empty(t, f.dl.flashes, "nothing flashed")
			ents, _ := os.ReadDir(f.stage)
			assert.Empty(t, ents, "nothing left staged")
		})
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	u := f.updater()
	found, err := u.Verify(context.Background(), []Expectation{{"nvme0", "1.0"}, {"eth2", "1.0"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"1.0"}, found["nvme0"])
	_, err = u.Verify(context.Background(), []Expectation{{"nvme0", "1.0"}, {"eth2", "2.0"}})
	assert.ErrorIs(t, err, ErrVersionMismatch)
	assert.Contains(t, err.Error(), "eth2 (pci/0000:3b:00.0) runs 1.0, not 2.0")
	_, err = u.Verify(context.Background(), []Expectation{{"eth9", "1.0"}})
	assert.ErrorIs(t, err, ErrUnknownTarget)
	_, err = u.Verify(context.Background(), nil)
	assert.ErrorIs(t, err, ErrInvalidImage)
	assert.Empty(t, f.nvme.sent)
}
