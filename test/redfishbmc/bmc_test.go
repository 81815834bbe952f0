package redfishbmc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeMachine records what the BMC asks of the machine.
type fakeMachine struct {
	mu    sync.Mutex
	next  func() BootConfig
	on    bool
	calls []string
	cd    string // what ChangeMedium last put in the drive
	fail  error
	// buttonOff makes the guest listen to the power button (it shuts
	// down).
	buttonOff bool
}

func (f *fakeMachine) record(c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.fail
}

func (f *fakeMachine) PowerOn(context.Context) error {
	if err := f.record("on"); err != nil {
		return err
	}
	f.next()
	f.mu.Lock()
	f.on = true
	f.mu.Unlock()
	return nil
}

func (f *fakeMachine) ForceOff(context.Context) error {
	if err := f.record("off"); err != nil {
		return err
	}
	f.mu.Lock()
	f.on = false
	f.mu.Unlock()
	return nil
}

func (f *fakeMachine) PowerButton(context.Context) error {
	if err := f.record("button"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buttonOff {
		f.on = false
	}
	return nil
}

func (f *fakeMachine) NMI(context.Context) error { return f.record("nmi") }
func (f *fakeMachine) On() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}

func (f *fakeMachine) ChangeMedium(_ context.Context, file string) error {
	if err := f.record("medium"); err != nil {
		return err
	}
	f.mu.Lock()
	f.cd = file
	f.mu.Unlock()
	return nil
}

func (f *fakeMachine) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func newTestBMC(t *testing.T) (*BMC, *fakeMachine) {
	t.Helper()
	fm := &fakeMachine{}
	b := newBMC(config{username: "root", password: "s3cret"}, t.TempDir(), &ConsoleLog{}, func(next func() BootConfig) Machine {
		fm.next = next
		return fm
	})
	t.Cleanup(func() { b.Close() })
	return b, fm
}

type call struct {
	method, path, body string
	header             map[string]string
	auth               bool // basic auth with the right credentials
}

func do(t *testing.T, b *BMC, c call) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, c.path, body)
	if c.auth {
		r.SetBasicAuth("root", "s3cret")
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	b.ServeHTTP(w, r)
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), w.Body.String())
	return m
}

func TestAuthentication(t *testing.T) {
	b, _ := newTestBMC(t)
	sys := b.SystemPath()
	for _, tc := range []struct {
		name string
		call call
		want int
	}{
		{"service root is open", call{method: "GET", path: "/redfish/v1/"}, 200},
		{"version document is open", call{method: "GET", path: "/redfish"}, 200},
		{"system without credentials", call{method: "GET", path: sys}, 401},
		{"system with basic auth", call{method: "GET", path: sys, auth: true}, 200},
		{"wrong password", call{method: "GET", path: sys, header: map[string]string{"Authorization": "Basic cm9vdDp3cm9uZw=="}}, 401},
		{"unknown token", call{method: "GET", path: sys, header: map[string]string{"X-Auth-Token": "nope"}}, 401},
		{"reset without credentials", call{method: "POST", path: sys + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"On"}`}, 401},
		{"login with the wrong password", call{method: "POST", path: sessionsPath, body: `{"UserName":"root","Password":"x"}`}, 401},
		{"login with bad JSON", call{method: "POST", path: sessionsPath, body: `{`}, 400},
		{"unknown resource", call{method: "GET", path: "/redfish/v1/Chassis", auth: true}, 404},
		{"wrong method", call{method: "DELETE", path: sys, auth: true}, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, b, tc.call)
			assert.Equal(t, tc.want, w.Code, w.Body.String())
			if w.Code >= 400 && w.Code != 405 && w.Code != 404 {
				assert.NotEmpty(t, decode(t, w)["error"], "a Redfish error body")
			}
		})
	}
}

func TestSessionLifecycle(t *testing.T) {
	b, _ := newTestBMC(t)
	w := do(t, b, call{method: "POST", path: sessionsPath, body: `{"UserName":"root","Password":"s3cret"}`})
	require.Equal(t, 201, w.Code, w.Body.String())
	token, loc := w.Header().Get("X-Auth-Token"), w.Header().Get("Location")
	require.NotEmpty(t, token)
	require.True(t, strings.HasPrefix(loc, sessionsPath+"/"), loc)
	withToken := map[string]string{"X-Auth-Token": token}
	assert.Equal(t, 200, do(t, b, call{method: "GET", path: b.SystemPath(), header: withToken}).Code)
	assert.Equal(t, 200, do(t, b, call{method: "GET", path: loc, header: withToken}).Code)
	members := decode(t, do(t, b, call{method: "GET", path: sessionsPath, header: withToken}))["Members"].([]any)
	assert.Equal(t, []any{map[string]any{"@odata.id": loc}}, members)
	assert.Equal(t, 204, do(t, b, call{method: "DELETE", path: loc, header: withToken}).Code)
	assert.Equal(t, 401, do(t, b, call{method: "GET", path: b.SystemPath(), header: withToken}).Code, "a deleted session's token")
	// The root advertises where to log in, as sushy looks it up.
	root := decode(t, do(t, b, call{method: "GET", path: "/redfish/v1/"}))
	assert.Equal(t, sessionsPath, root["Links"].(map[string]any)["Sessions"].(map[string]any)["@odata.id"])
}

func TestReset(t *testing.T) {
	for _, tc := range []struct {
		name      string
		on        bool
		body      string
		want      int
		wantCalls []string
		wantOn    bool
	}{
		{"On when off", false, `{"ResetType":"On"}`, 204, []string{"on"}, true},
		{"On when on does nothing", true, `{"ResetType":"On"}`, 204, nil, true},
		{"ForceOff", true, `{"ResetType":"ForceOff"}`, 204, []string{"off"}, false},
		{"ForceRestart", true, `{"ResetType":"ForceRestart"}`, 204, []string{"off", "on"}, true},
		{"GracefulShutdown presses the button", true, `{"ResetType":"GracefulShutdown"}`, 204, []string{"button"}, true},
		{"PushPowerButton when off powers on", false, `{"ResetType":"PushPowerButton"}`, 204, []string{"on"}, true},
		{"Nmi", true, `{"ResetType":"Nmi"}`, 204, []string{"nmi"}, true},
		{"Nmi when off", false, `{"ResetType":"Nmi"}`, 500, nil, false},
		{"unknown reset type", false, `{"ResetType":"Explode"}`, 400, nil, false},
		{"missing reset type", false, `{}`, 400, nil, false},
		{"bad JSON", false, `{"ResetType":`, 400, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, fm := newTestBMC(t)
			fm.on = tc.on
			w := do(t, b, call{method: "POST", path: b.SystemPath() + "/Actions/ComputerSystem.Reset", body: tc.body, auth: true})
			assert.Equal(t, tc.want, w.Code, w.Body.String())
			assert.Equal(t, tc.wantCalls, fm.Calls())
			assert.Equal(t, tc.wantOn, fm.On())
			want := map[bool]string{true: "On", false: "Off"}[tc.wantOn]
			assert.Equal(t, want, decode(t, do(t, b, call{method: "GET", path: b.SystemPath(), auth: true}))["PowerState"])
		})
	}
	t.Run("machine failure is a 500", func(t *testing.T) {
		b, fm := newTestBMC(t)
		fm.fail = errors.New("QEMU is gone")
		w := do(t, b, call{method: "POST", path: b.SystemPath() + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"On"}`, auth: true})
		assert.Equal(t, 500, w.Code)
		assert.Contains(t, w.Body.String(), "QEMU is gone")
	})
}

// TestGracefulRestart: the button is pressed, and the machine comes back
// once the guest has shut down.
func TestGracefulRestart(t *testing.T) {
	b, fm := newTestBMC(t)
	fm.on, fm.buttonOff = true, true
	w := do(t, b, call{method: "POST", path: b.SystemPath() + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"GracefulRestart"}`, auth: true})
	require.Equal(t, 204, w.Code, w.Body.String())
	require.Eventually(t, fm.On, 5*time.Second, 20*time.Millisecond, "the machine is back on")
	assert.Equal(t, []string{"button", "on"}, fm.Calls())
	assert.Len(t, b.Boots(), 1)
}

func TestSystemAdvertisesWhatIronicReads(t *testing.T) {
	b, _ := newTestBMC(t)
	s := decode(t, do(t, b, call{method: "GET", path: b.SystemPath(), auth: true}))
	reset := s["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)
	assert.Equal(t, b.SystemPath()+"/Actions/ComputerSystem.Reset", reset["target"])
	assert.Subset(t, reset["ResetType@Redfish.AllowableValues"], []any{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi"})
	boot := s["Boot"].(map[string]any)
	assert.Subset(t, boot["BootSourceOverrideTarget@Redfish.AllowableValues"], []any{"Pxe", "Hdd", "Cd", "None"})
	assert.Equal(t, "Legacy", boot["BootSourceOverrideMode"])
	assert.Equal(t, []any{map[string]any{"@odata.id": managerPath}}, s["Links"].(map[string]any)["ManagedBy"])
	mgr := decode(t, do(t, b, call{method: "GET", path: managerPath, auth: true}))
	vmc := decode(t, do(t, b, call{method: "GET", path: mgr["VirtualMedia"].(map[string]any)["@odata.id"].(string), auth: true}))
	assert.Equal(t, []any{map[string]any{"@odata.id": vmediaPath}}, vmc["Members"])
	cd := decode(t, do(t, b, call{method: "GET", path: vmediaPath, auth: true}))
	assert.Equal(t, []any{"CD", "DVD"}, cd["MediaTypes"])
	assert.Equal(t, false, cd["Inserted"])
	assert.Nil(t, cd["Image"])
	// Trailing slashes are the same resource (sushy joins paths).
	assert.Equal(t, 200, do(t, b, call{method: "GET", path: b.SystemPath() + "/", auth: true}).Code)
}

func TestPatchBoot(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		etag  string // "current", "stale" or none
		want  int
		check map[string]any
	}{
		{"target, once, UEFI", `{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI"}}`, "", 200,
			map[string]any{"BootSourceOverrideTarget": "Cd", "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "UEFI"}},
		{"only the mode", `{"Boot":{"BootSourceOverrideMode":"UEFI"}}`, "", 200,
			map[string]any{"BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideMode": "UEFI"}},
		{"with the current ETag", `{"Boot":{"BootSourceOverrideTarget":"Hdd","BootSourceOverrideEnabled":"Continuous"}}`, "current", 200,
			map[string]any{"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous"}},
		{"with a stale ETag", `{"Boot":{"BootSourceOverrideTarget":"Hdd"}}`, "stale", 412, map[string]any{"BootSourceOverrideTarget": "None"}},
		{"target not allowed", `{"Boot":{"BootSourceOverrideTarget":"Floppy"}}`, "", 400, map[string]any{"BootSourceOverrideTarget": "None"}},
		{"bad enabled", `{"Boot":{"BootSourceOverrideEnabled":"Always"}}`, "", 400, nil},
		{"bad mode", `{"Boot":{"BootSourceOverrideMode":"Bios"}}`, "", 400, map[string]any{"BootSourceOverrideMode": "Legacy"}},
		{"unknown boot property", `{"Boot":{"BootNext":"0001"}}`, "", 400, nil},
		{"other property", `{"AssetTag":"x"}`, "", 400, nil},
		{"empty boot", `{"Boot":{}}`, "", 400, nil},
		{"bad JSON", `{"Boot":`, "", 400, nil},
		{"one bad value applies nothing", `{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideMode":"x"}}`, "", 400, map[string]any{"BootSourceOverrideTarget": "None"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newTestBMC(t)
			h := map[string]string{}
			switch tc.etag {
			case "current":
				h["If-Match"] = do(t, b, call{method: "GET", path: b.SystemPath(), auth: true}).Header().Get("ETag")
				require.NotEmpty(t, h["If-Match"])
			case "stale":
				h["If-Match"] = `"0000000000000000"`
			}
			w := do(t, b, call{method: "PATCH", path: b.SystemPath(), body: tc.body, header: h, auth: true})
			assert.Equal(t, tc.want, w.Code, w.Body.String())
			boot := decode(t, do(t, b, call{method: "GET", path: b.SystemPath(), auth: true}))["Boot"].(map[string]any)
			for k, v := range tc.check {
				assert.Equal(t, v, boot[k], k)
			}
		})
	}
}

func TestOnceOverrideIsSpentAtPowerOn(t *testing.T) {
	b, fm := newTestBMC(t)
	reset := func(rt string) {
		w := do(t, b, call{method: "POST", path: b.SystemPath() + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"` + rt + `"}`, auth: true})
		require.Equal(t, 204, w.Code, w.Body.String())
	}
	require.Equal(t, 200, do(t, b, call{method: "PATCH", path: b.SystemPath(), auth: true,
		body: `{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once","BootSourceOverrideMode":"UEFI"}}`}).Code)
	reset("On")
	reset("ForceRestart")
	boots := b.Boots()
	require.Len(t, boots, 2)
	assert.Equal(t, BootConfig{Target: TargetCd, UEFI: true}, boots[0])
	assert.Equal(t, BootConfig{Target: TargetNone, UEFI: true}, boots[1], "a one-time override boots once")
	boot := decode(t, do(t, b, call{method: "GET", path: b.SystemPath(), auth: true}))["Boot"].(map[string]any)
	assert.Equal(t, "Disabled", boot["BootSourceOverrideEnabled"])
	assert.Equal(t, []string{"on", "off", "on"}, fm.Calls())

	require.Equal(t, 200, do(t, b, call{method: "PATCH", path: b.SystemPath(), auth: true,
		body: `{"Boot":{"BootSourceOverrideTarget":"Hdd","BootSourceOverrideEnabled":"Continuous"}}`}).Code)
	reset("ForceRestart")
	reset("ForceRestart")
	boots = b.Boots()
	assert.Equal(t, TargetHdd, boots[2].Target)
	assert.Equal(t, TargetHdd, boots[3].Target, "a continuous override stays")
}

func TestVirtualMedia(t *testing.T) {
	iso := bytes.Repeat([]byte("CD001"), 1000)
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/boot.iso":
			w.Write(iso)
		case "/private.iso":
			if u, p, ok := r.BasicAuth(); !ok || u != "img" || p != "pw" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			w.Write(iso)
		default:
			http.NotFound(w, r)
		}
	}))
	defer images.Close()
	insert := vmediaPath + "/Actions/VirtualMedia.InsertMedia"
	eject := vmediaPath + "/Actions/VirtualMedia.EjectMedia"

	t.Run("insert, boot and eject", func(t *testing.T) {
		b, _ := newTestBMC(t)
		w := do(t, b, call{method: "POST", path: insert, body: `{"Image":"` + images.URL + `/boot.iso"}`, auth: true})
		require.Equal(t, 204, w.Code, w.Body.String())
		cd := decode(t, do(t, b, call{method: "GET", path: vmediaPath, auth: true}))
		assert.Equal(t, true, cd["Inserted"])
		assert.Equal(t, images.URL+"/boot.iso", cd["Image"])
		assert.Equal(t, "boot.iso", cd["ImageName"])
		assert.Equal(t, 409, do(t, b, call{method: "POST", path: insert, body: `{"Image":"` + images.URL + `/boot.iso"}`, auth: true}).Code, "a second insert without eject")
		require.Equal(t, 204, do(t, b, call{method: "POST", path: b.SystemPath() + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"On"}`, auth: true}).Code)
		file := b.Boots()[0].CD
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.Equal(t, iso, got, "the machine boots the image's bytes")
		// sushy's eject posts no body at all.
		require.Equal(t, 204, do(t, b, call{method: "POST", path: eject, auth: true}).Code)
		cd = decode(t, do(t, b, call{method: "GET", path: vmediaPath, auth: true}))
		assert.Equal(t, false, cd["Inserted"])
		assert.Nil(t, cd["Image"])
		_, err = os.Stat(file)
		assert.True(t, os.IsNotExist(err), "the ejected image's bytes are removed")
		assert.Equal(t, 204, do(t, b, call{method: "POST", path: eject, body: `{}`, auth: true}).Code, "ejecting an empty drive")
	})
	t.Run("insert and eject while on change the running machine's medium", func(t *testing.T) {
		b, fm := newTestBMC(t)
		fm.on = true
		require.Equal(t, 204, do(t, b, call{method: "POST", path: insert, body: `{"Image":"` + images.URL + `/private.iso","UserName":"img","Password":"pw"}`, auth: true}).Code)
		assert.NotEmpty(t, fm.cd)
		require.Equal(t, 204, do(t, b, call{method: "POST", path: eject, auth: true}).Code)
		assert.Empty(t, fm.cd)
		assert.Equal(t, []string{"medium", "medium"}, fm.Calls())
	})
	for _, tc := range []struct{ name, body string }{
		{"no image", `{}`},
		{"not a URL", `{"Image":"/etc/passwd"}`},
		{"file URL", `{"Image":"file:///etc/passwd"}`},
		{"404", `{"Image":"` + images.URL + `/missing.iso"}`},
		{"refused credentials", `{"Image":"` + images.URL + `/private.iso"}`},
		{"bad JSON", `{"Image":`},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			b, _ := newTestBMC(t)
			w := do(t, b, call{method: "POST", path: insert, body: tc.body, auth: true})
			assert.Equal(t, 400, w.Code, w.Body.String())
			assert.Equal(t, false, decode(t, do(t, b, call{method: "GET", path: vmediaPath, auth: true}))["Inserted"])
		})
	}
}
