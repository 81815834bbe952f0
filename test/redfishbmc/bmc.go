// Package redfishbmc is a test-only Redfish BMC for one QEMU machine: what
// sushy 4.3.3 and Ironic 21.4's `redfish` hardware type with the
// `redfish-virtual-media` boot interface read and call. It serves the
// service root, sessions (X-Auth-Token) and basic auth, one System (power
// state, ComputerSystem.Reset, the Boot override with its allowable
// values, Links.ManagedBy) and one Manager with a virtual CD
// (VirtualMedia.InsertMedia/EjectMedia), and drives QEMU through QMP:
// power-on starts QEMU with the boot override's device order and the
// inserted image's bytes in the CD drive, as a real server's firmware
// would find them; ForceOff quits QEMU.
//
// It lives under test/ and is never built into the ramdisk.
package redfishbmc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Boot source override targets the BMC implements (Redfish's
// BootSourceOverrideTarget values).
const (
	TargetNone = "None"
	TargetPxe  = "Pxe"
	TargetCd   = "Cd"
	TargetHdd  = "Hdd"
)

// BootConfig is how one power-on boots: the device the override names
// first (TargetNone: the firmware's own order, disks first), UEFI or
// BIOS firmware, and the file holding the virtual CD's bytes ("" for an
// empty drive).
type BootConfig struct {
	Target string
	UEFI   bool
	CD     string
}

// Machine is the server the BMC manages: QEMU in the real BMC, a
// recording fake in the handlers' unit tests.
type Machine interface {
	// PowerOn starts the machine; it asks the BMC for its BootConfig
	// (which consumes a one-time override) at each start, including a
	// reboot the guest asks for.
	PowerOn(ctx context.Context) error
	// ForceOff stops it at once and returns when it is off.
	ForceOff(ctx context.Context) error
	// PowerButton presses the ACPI power button (a graceful shutdown, if
	// the guest listens).
	PowerButton(ctx context.Context) error
	NMI(ctx context.Context) error
	On() bool
	// ChangeMedium puts the file in the running machine's CD drive, or
	// ejects it when file is "".
	ChangeMedium(ctx context.Context, file string) error
}

var (
	resetTypes  = []string{"On", "ForceOn", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle", "Nmi", "PushPowerButton"}
	bootTargets = []string{TargetNone, TargetPxe, TargetCd, TargetHdd}
	bootEnabled = []string{"Disabled", "Once", "Continuous"}
	bootModes   = []string{"UEFI", "Legacy"}
)

const (
	rootPath     = "/redfish/v1"
	sessionsPath = rootPath + "/SessionService/Sessions"
	managerPath  = rootPath + "/Managers/bmc"
	vmediaPath   = managerPath + "/VirtualMedia/Cd"
)

// BMC is the Redfish service; it is an http.Handler.
type BMC struct {
	username, password string
	systemID, uuid     string
	imageClient        *http.Client
	dir                string
	console            *ConsoleLog
	machine            Machine
	mux                *http.ServeMux

	ctx    context.Context // the machine's lifetime
	cancel context.CancelFunc
	power  sync.Mutex // one power action at a time

	mu       sync.Mutex
	target   string
	enabled  string
	mode     string
	media    media
	sessions map[string]string // token → session id
	boots    []BootConfig
	restarts sync.WaitGroup
}

type media struct {
	inserted bool
	image    string // the URL Ironic gave
	file     string // its bytes
}

type config struct {
	username, password, systemID string
	uefi                         bool
	imageClient                  *http.Client
}

func newBMC(c config, dir string, console *ConsoleLog, newMachine func(next func() BootConfig) Machine) *BMC {
	if c.username == "" && c.password == "" {
		c.username, c.password = "admin", "password"
	}
	if c.systemID == "" {
		c.systemID = "goipa-vm"
	}
	if c.imageClient == nil {
		c.imageClient = &http.Client{Timeout: 10 * time.Minute}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &BMC{username: c.username, password: c.password, systemID: c.systemID, uuid: uuid.NewString(),
		imageClient: c.imageClient, dir: dir, console: console, ctx: ctx, cancel: cancel,
		target: TargetNone, enabled: "Disabled", mode: "Legacy", sessions: map[string]string{}}
	if c.uefi {
		b.mode = "UEFI"
	}
	b.machine = newMachine(b.nextBoot)
	b.routes()
	return b
}

// SystemPath is the System's resource, Ironic's redfish_system_id.
func (b *BMC) SystemPath() string { return rootPath + "/Systems/" + b.systemID }

// Credentials are the user and password the BMC accepts.
func (b *BMC) Credentials() (user, password string) { return b.username, b.password }

// Console is the machine's serial console across power cycles.
func (b *BMC) Console() *ConsoleLog { return b.console }

// Boots lists how each power-on so far booted.
func (b *BMC) Boots() []BootConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.boots)
}

// PoweredOn reports whether the machine runs.
func (b *BMC) PoweredOn() bool { return b.machine.On() }

// Close powers the machine off and removes the inserted images' bytes.
func (b *BMC) Close() error {
	b.cancel()
	b.power.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := b.machine.ForceOff(ctx)
	cancel()
	b.power.Unlock()
	b.restarts.Wait()
	if b.dir != "" {
		err = errors.Join(err, os.RemoveAll(b.dir))
	}
	return err
}

// nextBoot is the BootConfig of a power-on starting now: the override
// applies if enabled, and a one-time override is then spent, as Redfish
// says (BootSourceOverrideEnabled goes back to Disabled).
func (b *BMC) nextBoot() BootConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := BootConfig{Target: TargetNone, UEFI: b.mode == "UEFI"}
	if b.media.inserted {
		c.CD = b.media.file
	}
	if b.enabled != "Disabled" {
		c.Target = b.target
	}
	if b.enabled == "Once" {
		b.enabled = "Disabled"
	}
	b.boots = append(b.boots, c)
	if b.console != nil {
		fmt.Fprintf(b.console, "redfishbmc: power on: boot target %s, uefi=%v, cd=%q\n", c.Target, c.UEFI, c.CD)
	}
	return c
}

func (b *BMC) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /redfish", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"v1": rootPath + "/"})
	})
	m.HandleFunc("GET "+rootPath, b.serviceRoot)
	m.HandleFunc("GET "+rootPath+"/SessionService", b.sessionService)
	m.HandleFunc("GET "+sessionsPath, b.sessionCollection)
	m.HandleFunc("POST "+sessionsPath, b.createSession)
	m.HandleFunc("GET "+sessionsPath+"/{id}", b.getSession)
	m.HandleFunc("DELETE "+sessionsPath+"/{id}", b.deleteSession)
	m.HandleFunc("GET "+rootPath+"/Systems", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, collection("#ComputerSystemCollection.ComputerSystemCollection", rootPath+"/Systems", "Computer System Collection", b.SystemPath()))
	})
	m.HandleFunc("GET "+b.SystemPath(), b.getSystem)
	m.HandleFunc("PATCH "+b.SystemPath(), b.patchSystem)
	m.HandleFunc("POST "+b.SystemPath()+"/Actions/ComputerSystem.Reset", b.reset)
	m.HandleFunc("GET "+rootPath+"/Managers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, collection("#ManagerCollection.ManagerCollection", rootPath+"/Managers", "Manager Collection", managerPath))
	})
	m.HandleFunc("GET "+managerPath, b.getManager)
	m.HandleFunc("GET "+managerPath+"/VirtualMedia", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, collection("#VirtualMediaCollection.VirtualMediaCollection", managerPath+"/VirtualMedia", "Virtual Media Services", vmediaPath))
	})
	m.HandleFunc("GET "+vmediaPath, b.getVirtualMedia)
	m.HandleFunc("POST "+vmediaPath+"/Actions/VirtualMedia.InsertMedia", b.insertMedia)
	m.HandleFunc("POST "+vmediaPath+"/Actions/VirtualMedia.EjectMedia", b.ejectMedia)
	b.mux = m
}

// ServeHTTP authenticates (the service root, its version document and
// the session login are open, as Redfish says) and routes.
func (b *BMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimSuffix(p, "/")
	}
	p := r.URL.Path
	open := (r.Method == http.MethodGet && (p == "/redfish" || p == rootPath)) || (r.Method == http.MethodPost && p == sessionsPath)
	if !open && !b.authenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="redfishbmc"`)
		redfishError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "authentication required: basic auth or X-Auth-Token")
		return
	}
	w.Header().Set("OData-Version", "4.0")
	b.mux.ServeHTTP(w, r)
}

func (b *BMC) authenticated(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		b.mu.Lock()
		_, ok := b.sessions[tok]
		b.mu.Unlock()
		return ok
	}
	u, p, ok := r.BasicAuth()
	return ok && b.credentialsMatch(u, p)
}

func (b *BMC) credentialsMatch(user, password string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(b.username))&subtle.ConstantTimeCompare([]byte(password), []byte(b.password)) == 1
}

func (b *BMC) serviceRoot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.type":    "#ServiceRoot.v1_5_0.ServiceRoot",
		"@odata.id":      rootPath + "/",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.11.0",
		"UUID":           b.uuid,
		"Systems":        odataID(rootPath + "/Systems"),
		"Managers":       odataID(rootPath + "/Managers"),
		"SessionService": odataID(rootPath + "/SessionService"),
		"Links":          map[string]any{"Sessions": odataID(sessionsPath)},
	})
}

func (b *BMC) sessionService(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.type":    "#SessionService.v1_1_8.SessionService",
		"@odata.id":      rootPath + "/SessionService",
		"Id":             "SessionService",
		"Name":           "Session Service",
		"ServiceEnabled": true,
		"SessionTimeout": 1800,
		"Sessions":       odataID(sessionsPath),
	})
}

func (b *BMC) sessionCollection(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var ids []string
	for _, id := range b.sessions {
		ids = append(ids, sessionsPath+"/"+id)
	}
	b.mu.Unlock()
	slices.Sort(ids)
	writeJSON(w, http.StatusOK, collection("#SessionCollection.SessionCollection", sessionsPath, "Session Collection", ids...))
}

func (b *BMC) createSession(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserName, Password string
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "session request: "+err.Error())
		return
	}
	if !b.credentialsMatch(req.UserName, req.Password) {
		redfishError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "wrong user name or password")
		return
	}
	token, id := uuid.NewString(), uuid.NewString()[:8]
	b.mu.Lock()
	b.sessions[token] = id
	b.mu.Unlock()
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", sessionsPath+"/"+id)
	writeJSON(w, http.StatusCreated, session(id, req.UserName))
}

func session(id, user string) map[string]any {
	return map[string]any{"@odata.type": "#Session.v1_3_0.Session", "@odata.id": sessionsPath + "/" + id, "Id": id, "Name": "User Session", "UserName": user}
}

// sessionByID returns the token of session id.
func (b *BMC) sessionByID(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tok, sid := range b.sessions {
		if sid == id {
			return tok, true
		}
	}
	return "", false
}

func (b *BMC) getSession(w http.ResponseWriter, r *http.Request) {
	if _, ok := b.sessionByID(r.PathValue("id")); !ok {
		redfishError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no such session")
		return
	}
	writeJSON(w, http.StatusOK, session(r.PathValue("id"), b.username))
}

func (b *BMC) deleteSession(w http.ResponseWriter, r *http.Request) {
	tok, ok := b.sessionByID(r.PathValue("id"))
	if !ok {
		redfishError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no such session")
		return
	}
	b.mu.Lock()
	delete(b.sessions, tok)
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (b *BMC) system() map[string]any {
	power := "Off"
	if b.machine.On() {
		power = "On"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return map[string]any{
		"@odata.type":  "#ComputerSystem.v1_10_0.ComputerSystem",
		"@odata.id":    b.SystemPath(),
		"Id":           b.systemID,
		"Name":         "goipa test machine",
		"UUID":         b.uuid,
		"Manufacturer": "QEMU",
		"Model":        "Standard PC (i440FX + PIIX, 1996)",
		"SystemType":   "Virtual",
		"PowerState":   power,
		"Status":       map[string]any{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                         b.target,
			"BootSourceOverrideTarget@Redfish.AllowableValues": bootTargets,
			"BootSourceOverrideEnabled":                        b.enabled,
			"BootSourceOverrideMode":                           b.mode,
		},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target":                            b.SystemPath() + "/Actions/ComputerSystem.Reset",
			"ResetType@Redfish.AllowableValues": resetTypes,
		}},
		"Links": map[string]any{"ManagedBy": []any{odataID(managerPath)}},
	}
}

func (b *BMC) getSystem(w http.ResponseWriter, r *http.Request) {
	body := b.system()
	w.Header().Set("ETag", etag(body))
	w.Header().Set("Allow", "GET, PATCH")
	writeJSON(w, http.StatusOK, body)
}

// patchSystem sets the boot override; it is the only writable part. An
// If-Match that is not the current ETag is refused (412), as sushy
// expects of BMCs that send ETags.
func (b *BMC) patchSystem(w http.ResponseWriter, r *http.Request) {
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != etag(b.system()) {
		redfishError(w, http.StatusPreconditionFailed, "Base.1.8.PreconditionFailed", "the ETag in If-Match is not the system's current one")
		return
	}
	var req map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	for k := range req {
		if k != "Boot" {
			redfishError(w, http.StatusBadRequest, "Base.1.8.PropertyNotWritable", fmt.Sprintf("property %s is not writable", k))
			return
		}
	}
	var boot map[string]string
	if err := json.Unmarshal(req["Boot"], &boot); err != nil || len(boot) == 0 {
		redfishError(w, http.StatusBadRequest, "Base.1.8.PropertyValueTypeError", "Boot must be an object of strings with at least one property")
		return
	}
	allowed := map[string][]string{"BootSourceOverrideTarget": bootTargets, "BootSourceOverrideEnabled": bootEnabled, "BootSourceOverrideMode": bootModes}
	for k, v := range boot {
		values, ok := allowed[k]
		if !ok {
			redfishError(w, http.StatusBadRequest, "Base.1.8.PropertyNotWritable", fmt.Sprintf("property Boot/%s is not writable", k))
			return
		}
		if !slices.Contains(values, v) {
			redfishError(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList", fmt.Sprintf("Boot/%s %q is not one of %v", k, v, values))
			return
		}
	}
	b.mu.Lock()
	if v, ok := boot["BootSourceOverrideTarget"]; ok {
		b.target = v
	}
	if v, ok := boot["BootSourceOverrideEnabled"]; ok {
		b.enabled = v
	}
	if v, ok := boot["BootSourceOverrideMode"]; ok {
		b.mode = v
	}
	b.mu.Unlock()
	b.getSystem(w, r)
}

func (b *BMC) reset(w http.ResponseWriter, r *http.Request) {
	var req struct{ ResetType string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	if req.ResetType == "" {
		redfishError(w, http.StatusBadRequest, "Base.1.8.ActionParameterMissing", "ResetType is required")
		return
	}
	if !slices.Contains(resetTypes, req.ResetType) {
		redfishError(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", fmt.Sprintf("ResetType %q is not one of %v", req.ResetType, resetTypes))
		return
	}
	if err := b.doReset(r.Context(), req.ResetType); err != nil {
		redfishError(w, http.StatusInternalServerError, "Base.1.8.InternalError", fmt.Sprintf("%s: %v", req.ResetType, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// doReset carries out a ResetType. On when on and ForceOff when off do
// nothing, as a server's power button would not.
func (b *BMC) doReset(ctx context.Context, resetType string) error {
	b.power.Lock()
	defer b.power.Unlock()
	m := b.machine
	switch resetType {
	case "On", "ForceOn":
		if !m.On() {
			return m.PowerOn(b.ctx)
		}
	case "ForceOff":
		return m.ForceOff(ctx)
	case "GracefulShutdown":
		if m.On() {
			return m.PowerButton(ctx)
		}
	case "PushPowerButton":
		if m.On() {
			return m.PowerButton(ctx)
		}
		return m.PowerOn(b.ctx)
	case "ForceRestart", "PowerCycle":
		if err := m.ForceOff(ctx); err != nil {
			return err
		}
		return m.PowerOn(b.ctx)
	case "GracefulRestart":
		if !m.On() {
			return m.PowerOn(b.ctx)
		}
		if err := m.PowerButton(ctx); err != nil {
			return err
		}
		// The guest shuts down in its own time; the machine comes back
		// when it has (a guest that ignores the button stays on).
		b.restarts.Add(1)
		go func() {
			defer b.restarts.Done()
			for end := time.Now().Add(5 * time.Minute); m.On() && time.Now().Before(end); {
				select {
				case <-b.ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
			b.power.Lock()
			defer b.power.Unlock()
			if !m.On() && b.ctx.Err() == nil {
				m.PowerOn(b.ctx)
			}
		}()
	case "Nmi":
		if m.On() {
			return m.NMI(ctx)
		}
		return errors.New("the machine is off")
	}
	return nil
}

func (b *BMC) getManager(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.type":  "#Manager.v1_10_0.Manager",
		"@odata.id":    managerPath,
		"Id":           "bmc",
		"Name":         "goipa test BMC",
		"ManagerType":  "BMC",
		"UUID":         b.uuid,
		"Status":       map[string]any{"State": "Enabled", "Health": "OK"},
		"VirtualMedia": odataID(managerPath + "/VirtualMedia"),
		"Links":        map[string]any{"ManagerForServers": []any{odataID(b.SystemPath())}},
	})
}

func (b *BMC) virtualMedia() map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var image, name any
	connected := "NotConnected"
	if b.media.image != "" {
		image = b.media.image
		if u, err := url.Parse(b.media.image); err == nil {
			name = path.Base(u.Path)
		}
		connected = "URI"
	}
	return map[string]any{
		"@odata.type":    "#VirtualMedia.v1_3_0.VirtualMedia",
		"@odata.id":      vmediaPath,
		"Id":             "Cd",
		"Name":           "Virtual CD",
		"MediaTypes":     []string{"CD", "DVD"},
		"Image":          image,
		"ImageName":      name,
		"Inserted":       b.media.inserted,
		"WriteProtected": true,
		"ConnectedVia":   connected,
		"TransferMethod": "Upload",
		"Actions": map[string]any{
			"#VirtualMedia.InsertMedia": map[string]any{"target": vmediaPath + "/Actions/VirtualMedia.InsertMedia"},
			"#VirtualMedia.EjectMedia":  map[string]any{"target": vmediaPath + "/Actions/VirtualMedia.EjectMedia"},
		},
	}
}

func (b *BMC) getVirtualMedia(w http.ResponseWriter, r *http.Request) {
	body := b.virtualMedia()
	w.Header().Set("ETag", etag(body))
	writeJSON(w, http.StatusOK, body)
}

// insertMedia downloads the image (the BMC holds its bytes, as a BMC's
// "Upload" transfer does) and puts it in the drive, at once if the
// machine runs.
func (b *BMC) insertMedia(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Image              string
		Inserted           *bool
		UserName, Password string
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	u, err := url.Parse(req.Image)
	if req.Image == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		redfishError(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueFormatError", fmt.Sprintf("Image %q is not an http(s) URL", req.Image))
		return
	}
	b.mu.Lock()
	busy := b.media.image != ""
	b.mu.Unlock()
	if busy {
		redfishError(w, http.StatusConflict, "Base.1.8.ResourceInUse", "a medium is already inserted: eject it first")
		return
	}
	file, err := b.download(r.Context(), req.Image, req.UserName, req.Password)
	if err != nil {
		redfishError(w, http.StatusBadRequest, "Base.1.8.ResourceAtUriUnauthorized", err.Error())
		return
	}
	inserted := req.Inserted == nil || *req.Inserted
	b.power.Lock()
	defer b.power.Unlock()
	if inserted && b.machine.On() {
		if err := b.machine.ChangeMedium(r.Context(), file); err != nil {
			os.Remove(file)
			redfishError(w, http.StatusInternalServerError, "Base.1.8.InternalError", err.Error())
			return
		}
	}
	b.mu.Lock()
	b.media = media{inserted: inserted, image: req.Image, file: file}
	b.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (b *BMC) download(ctx context.Context, image, user, password string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, image, nil)
	if err != nil {
		return "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := b.imageClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("downloading the image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("downloading the image %s: HTTP %s", image, resp.Status)
	}
	f, err := os.CreateTemp(b.dir, "vmedia-*.iso")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("downloading the image %s: %w", image, err)
	}
	return filepath.Clean(f.Name()), nil
}

// ejectMedia takes the medium out (of the running machine's drive too);
// ejecting an empty drive succeeds. sushy posts no body, or {}.
func (b *BMC) ejectMedia(w http.ResponseWriter, r *http.Request) {
	b.power.Lock()
	defer b.power.Unlock()
	b.mu.Lock()
	old := b.media
	b.mu.Unlock()
	if old.inserted && b.machine.On() {
		if err := b.machine.ChangeMedium(r.Context(), ""); err != nil {
			redfishError(w, http.StatusInternalServerError, "Base.1.8.InternalError", err.Error())
			return
		}
	}
	b.mu.Lock()
	b.media = media{}
	b.mu.Unlock()
	if old.file != "" {
		os.Remove(old.file)
	}
	w.WriteHeader(http.StatusNoContent)
}

func odataID(p string) map[string]any { return map[string]any{"@odata.id": p} }

func collection(odataType, self, name string, members ...string) map[string]any {
	m := []any{}
	for _, p := range members {
		m = append(m, odataID(p))
	}
	return map[string]any{"@odata.type": odataType, "@odata.id": self, "Name": name, "Members": m, "Members@odata.count": len(m)}
}

// etag is a strong ETag of a resource's representation.
func etag(body any) string {
	b, _ := json.Marshal(body)
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:8]) + `"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// redfishError answers in Redfish's error format, which sushy reads for
// its exception's message.
func redfishError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{
			"MessageId": code, "Message": msg, "Severity": "Warning",
		}},
	}})
}
