// Package realironic runs Debian's unmodified Ironic 21.4 (and optionally
// ironic-inspector) as single processes on loopback for tests, with the
// configuration that the project's notes verified: sqlite, noauth, no
// message bus, fake power, the direct deploy interface.
//
// Every wait is bounded; processes are started in their own process group
// and stopped by pid when the test ends.
package realironic

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/vishvananda/netns"
)

// nsDialer dials from inside network namespace name: the socket is made
// there and stays there, whatever thread uses it later.
func nsDialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return nil, err
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			return nil, err
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			return nil, err
		}
		defer netns.Set(orig)
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	}
}

// APIVersion is the microversion the harness speaks (21.4's newest).
const APIVersion = "1.82"

// Ironic is one running Ironic.
type Ironic struct {
	URL          string // API base, http://127.0.0.1:<port>
	InspectorURL string // set with WithInspector
	StateDir     string
	ImageDir     string // served at ImageURL
	ImageBase    string // http://127.0.0.1:<port>
	LogPath      string
	InspectorLog string
	// CAFile is the CA (PEM) of Ironic's API certificate with WithTLS:
	// [agent] api_ca_file, which Ironic puts into the ISOs it builds.
	CAFile string

	t          testing.TB
	http       *http.Client
	procs      []*exec.Cmd
	imgSv      *http.Server
	imgAddr    string
	throttle   atomic.Int64 // bytes per second the image server sends; 0 = unthrottled
	ironicProc *exec.Cmd
	netns      string
}

// HTTP is a client that reaches Ironic's network (the namespace's, with
// WithNetNS).
func (ir *Ironic) HTTP() *http.Client { return ir.http }

// Dial connects from Ironic's network (inside its namespace, with
// WithNetNS): a test reaches a VM on the provisioning network this way,
// by SSH for example.
func (ir *Ironic) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if ir.netns == "" {
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
	}
	return nsDialer(ir.netns)(ctx, network, addr)
}

type options struct {
	heartbeatTimeout int
	inspector        bool
	metal3Inspector  bool
	automatedClean   bool
	fastTrack        bool
	callbackTimeout  int
	mdns             bool
	netns, host      string
	virtualMedia     bool
	tls              bool
}

// WithVirtualMedia enables the redfish hardware type with the
// redfish-virtual-media boot interface and redfish power and management,
// and what Ironic needs to build boot ISOs itself and serve them to the
// BMC without Swift: [redfish] use_swift = false, [deploy] http_root the
// folder the image server serves (ImageDir, at http_url), Debian's
// ISOLINUX path ([DEFAULT] isolinux_bin; Ironic's default path is not
// Debian's, ldlinux.c32 it finds itself).
func WithVirtualMedia() Option { return func(o *options) { o.virtualMedia = true } }

// WithTLS serves Ironic's API over HTTPS with a certificate of a CA made
// for the test ([api] enable_ssl_api, [ssl]); [agent] api_ca_file names
// that CA, so Ironic's ISOs carry it (etc/ironic-python-agent/ironic.crt
// with an ironic-tls.conf); the harness's client trusts it.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithNetNS runs Ironic, the inspector and the image server inside the
// network namespace ns, on address host there (a provisioning network
// that a VM on the namespace's bridge reaches). The harness's client
// dials into the namespace.
func WithNetNS(ns, host string) Option { return func(o *options) { o.netns, o.host = ns, host } }

// Option changes the configuration.
type Option func(*options)

// WithHeartbeatTimeout sets [api]ramdisk_heartbeat_timeout (sent to the
// agent; it heartbeats every 0.3-0.6 of it).
func WithHeartbeatTimeout(s int) Option { return func(o *options) { o.heartbeatTimeout = s } }

// WithInspector also runs ironic-inspector and enables the inspector
// inspect interface.
func WithInspector() Option { return func(o *options) { o.inspector = true } }

// WithMetal3Inspector runs ironic-inspector (as WithInspector) with the
// [processing] options metal3-io/ironic-image's inspector configuration
// sets: the extra_hardware and lldp_basic hooks after the default ones,
// introspection data stored in the database (InspectionData reads it),
// ports kept as present, ramdisk logs always stored, no power-off.
func WithMetal3Inspector() Option {
	return func(o *options) { o.inspector, o.metal3Inspector = true, true }
}

// WithFastTrack turns on [deploy]fast_track: Ironic keeps a running
// agent between operations instead of rebooting it.
func WithFastTrack() Option { return func(o *options) { o.fastTrack = true } }

// WithAutomatedClean turns on [conductor]automated_clean.
func WithAutomatedClean() Option { return func(o *options) { o.automatedClean = true } }

// WithMDNS makes Ironic ([conductor] enable_mdns) and the inspector
// ([DEFAULT] enable_mdns) publish themselves by multicast DNS. Only with
// WithNetNS: no multicast from the host's own namespaces.
func WithMDNS() Option { return func(o *options) { o.mdns = true } }

// WithCallbackTimeout sets how long Ironic waits in *wait states.
func WithCallbackTimeout(s int) Option { return func(o *options) { o.callbackTimeout = s } }

// FreePort returns a loopback TCP port that is free and stays reserved
// for this test until it ends.
//
// A port the kernel hands out for ":0" lies in the ephemeral range, where
// every other test's listeners and outgoing connections take theirs too:
// in a full run an Ironic or inspector started seconds later found its
// port taken, or, worse, another test's inspector answering on it. So the
// port comes from below the ephemeral range, and a reservation (an
// abstract Unix socket named after the port, which the kernel drops with
// the process and which leaves no file behind) keeps every other test
// process from choosing it while this test runs.
func FreePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 20000, 32768 // below ip_local_port_range's default 32768
	start := int(time.Now().UnixNano()%int64(hi-lo)) + os.Getpid()
	for i := 0; i < hi-lo; i++ {
		port := lo + (start+i*7919)%(hi-lo) // 7919 is prime: visits every port once
		hold, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("@goipa-test-port-%d", port), Net: "unix"})
		if err != nil {
			continue // another test process holds it
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			hold.Close()
			continue
		}
		l.Close()
		t.Cleanup(func() { hold.Close() })
		return port
	}
	t.Fatalf("free port: none free in %d-%d", lo, hi-1)
	return 0
}

const ironicConf = `[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = goipa-test-ironic
my_ip = {{.Host}}
state_path = {{.State}}
tempdir = {{.State}}/tmp
debug = true
log_file = {{.Log}}
use_stderr = false
minimum_required_memory = 128
minimum_memory_warning_only = true
enabled_hardware_types = manual-management,fake-hardware{{if .VirtualMedia}},redfish{{end}}
enabled_boot_interfaces = pxe,fake{{if .VirtualMedia}},redfish-virtual-media{{end}}
enabled_deploy_interfaces = direct,fake
enabled_power_interfaces = fake{{if .VirtualMedia}},redfish{{end}}
enabled_management_interfaces = noop,fake{{if .VirtualMedia}},redfish{{end}}
{{- if .VirtualMedia}}
isolinux_bin = /usr/lib/ISOLINUX/isolinux.bin
{{- end}}
enabled_network_interfaces = noop
enabled_inspect_interfaces = no-inspect,fake{{if .Inspector}},inspector{{end}}
enabled_raid_interfaces = no-raid,agent,fake
enabled_rescue_interfaces = no-rescue,agent,fake
enabled_bios_interfaces = no-bios,fake
enabled_console_interfaces = no-console,fake
enabled_vendor_interfaces = no-vendor,fake
enabled_storage_interfaces = noop
default_deploy_interface = direct
default_network_interface = noop

[api]
host_ip = {{.Host}}
port = {{.APIPort}}
api_workers = 1
ramdisk_heartbeat_timeout = {{.HeartbeatTimeout}}
restrict_lookup = true
enable_ssl_api = {{.TLS}}
{{- if .TLS}}

[ssl]
cert_file = {{.State}}/tls/ironic.crt
key_file = {{.State}}/tls/ironic.key
{{- end}}

[database]
connection = sqlite:///{{.State}}/ironic.sqlite

[conductor]
enable_mdns = {{.MDNS}}
automated_clean = {{.AutomatedClean}}
deploy_callback_timeout = {{.CallbackTimeout}}
clean_callback_timeout = {{.CallbackTimeout}}
inspect_wait_timeout = {{.CallbackTimeout}}
check_provision_state_interval = 5
sync_power_state_interval = 60
heartbeat_interval = 5
power_state_change_timeout = 5
soft_power_off_timeout = 5
node_locked_retry_attempts = 10
node_locked_retry_interval = 1
sync_local_state_interval = 0
deploy_kernel = {{.ImageBase}}/agent.kernel
deploy_ramdisk = {{.ImageBase}}/agent.ramdisk

[deploy]
http_url = {{.ImageBase}}
http_root = {{.HTTPRoot}}
default_boot_mode = bios
fast_track = {{.FastTrack}}
erase_devices_priority = 0
erase_devices_metadata_priority = 10
power_off_after_deploy_failure = true

[agent]
command_timeout = 30
max_command_attempts = 3
command_wait_attempts = 60
command_wait_interval = 2
post_deploy_get_power_state_retries = 3
post_deploy_get_power_state_retry_interval = 1
deploy_logs_collect = on_failure
deploy_logs_storage_backend = local
deploy_logs_local_path = {{.State}}/deploy-logs
image_download_source = http
certificates_path = {{.State}}/certificates
verify_ca = False
require_tls = false
{{- if .TLS}}
api_ca_file = {{.State}}/tls/ca.crt
{{- end}}
{{- if .VirtualMedia}}

[redfish]
use_swift = false
{{- end}}

[dhcp]
dhcp_provider = none

[service_catalog]
auth_type = none
endpoint_override = {{.APIURL}}

[pxe]
images_path = {{.State}}/images
instance_master_path = {{.State}}/master_images
tftp_root = {{.State}}/tftp
tftp_master_path = {{.State}}/tftp_master

[inspector]
auth_type = none
endpoint_override = http://{{.Host}}:{{.InspectorPort}}
callback_endpoint_override = http://{{.CallbackHost}}:{{.InspectorPort}}
require_managed_boot = false
power_off = false
status_check_period = 5

[oslo_concurrency]
lock_path = {{.State}}/locks

[oslo_messaging_notifications]
driver = noop
`

const inspectorConf = `[DEFAULT]
auth_strategy = noauth
transport_url = fake://
listen_address = {{.Host}}
listen_port = {{.InspectorPort}}
debug = true
log_file = {{.InspectorLog}}
use_stderr = false
standalone = true
enable_mdns = {{.MDNS}}

[service_catalog]
auth_type = none
endpoint_override = http://{{.Host}}:{{.InspectorPort}}

[database]
connection = sqlite:///{{.State}}/inspector.sqlite

[ironic]
auth_type = none
{{- if .TLS}}
cafile = {{.State}}/tls/ca.crt
{{- end}}
endpoint_override = {{.APIURL}}

[pxe_filter]
driver = noop

[processing]
add_ports = all
ramdisk_logs_dir = {{.State}}/ramdisk-logs
{{- if .Metal3Inspector}}
keep_ports = present
store_data = database
always_store_ramdisk_logs = true
permit_active_introspection = true
power_off = false
processing_hooks = $default_processing_hooks,extra_hardware,lldp_basic
{{- else}}
keep_ports = all
store_data = none
always_store_ramdisk_logs = false
{{- end}}

[oslo_concurrency]
lock_path = {{.State}}/locks
`

// Start runs Ironic (and ironic-inspector with WithInspector) for the
// test and stops it at cleanup.
func Start(t testing.TB, opts ...Option) *Ironic {
	t.Helper()
	o := options{heartbeatTimeout: 30, callbackTimeout: 180, host: "127.0.0.1"}
	for _, f := range opts {
		f(&o)
	}
	callbackHost := o.host
	if o.host == "127.0.0.1" {
		callbackHost = "127.1" // Ironic refuses a loopback literal there (notes, pitfall 4)
	}
	if o.mdns && o.netns == "" {
		t.Fatal("realironic: WithMDNS needs WithNetNS (no multicast from the host's namespaces)")
	}
	for _, bin := range []string{"ironic", "ironic-dbsync"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (make test installs it with test/install-deps.sh): %v", bin, err)
		}
	}
	state := t.TempDir()
	ir := &Ironic{t: t, StateDir: state, ImageDir: filepath.Join(state, "images-served"),
		LogPath: filepath.Join(state, "ironic.log"), InspectorLog: filepath.Join(state, "inspector.log"),
		http: &http.Client{Timeout: 30 * time.Second}, netns: o.netns}
	if o.netns != "" {
		ir.http.Transport = &http.Transport{DialContext: nsDialer(o.netns)}
	}
	for _, d := range []string{"tmp", "http", "images", "master_images", "tftp", "tftp_master", "locks", "deploy-logs", "certificates", "images-served", "ramdisk-logs"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Dummy deploy kernel and ramdisk: the pxe boot interface downloads them.
	for _, f := range []string{"agent.kernel", "agent.ramdisk"} {
		os.WriteFile(filepath.Join(ir.ImageDir, f), []byte("goipa test placeholder\n"), 0o644)
	}
	t.Cleanup(ir.stop)
	apiPort, inspPort := FreePort(t), FreePort(t)
	if o.netns != "" {
		apiPort, inspPort = 6385, 5050 // a fresh namespace has every port free
		ir.startImageServerInNS(o.host, 8080)
	} else {
		ir.startImageServer()
	}
	ir.URL = fmt.Sprintf("http://%s:%d", o.host, apiPort)
	httpRoot := filepath.Join(state, "http")
	if o.virtualMedia {
		// Ironic publishes its ISOs under http_root/redfish and hands the
		// BMC http_url/redfish/...: the folder the image server serves.
		httpRoot = ir.ImageDir
	}
	if o.tls {
		ir.URL = fmt.Sprintf("https://%s:%d", o.host, apiPort)
		ir.CAFile = writeTestPKI(t, filepath.Join(state, "tls"), o.host)
		pool := x509.NewCertPool()
		ca, err := os.ReadFile(ir.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(ca)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		if o.netns != "" {
			tr.DialContext = nsDialer(o.netns)
		}
		ir.http.Transport = tr
	}
	vals := map[string]any{
		"State": state, "Log": ir.LogPath, "InspectorLog": ir.InspectorLog, "APIPort": apiPort, "InspectorPort": inspPort,
		"HeartbeatTimeout": o.heartbeatTimeout, "AutomatedClean": o.automatedClean, "FastTrack": o.fastTrack, "CallbackTimeout": o.callbackTimeout,
		"ImageBase": ir.ImageBase, "Inspector": o.inspector, "Metal3Inspector": o.metal3Inspector, "Host": o.host, "CallbackHost": callbackHost, "MDNS": o.mdns,
		"VirtualMedia": o.virtualMedia, "TLS": o.tls, "HTTPRoot": httpRoot, "APIURL": ir.URL,
	}
	conf := filepath.Join(state, "ironic.conf")
	writeTemplate(t, conf, ironicConf, vals)

	run(t, 60*time.Second, "ironic-dbsync", "--config-file", conf, "create_schema")
	ir.spawn("ironic", "--config-file", conf)
	if o.inspector {
		iconf := filepath.Join(state, "inspector.conf")
		writeTemplate(t, iconf, inspectorConf, vals)
		run(t, 60*time.Second, "ironic-inspector-dbsync", "--config-file", iconf, "upgrade")
		ir.spawn("ironic-inspector", "--config-file", iconf)
		ir.InspectorURL = fmt.Sprintf("http://%s:%d", o.host, inspPort)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := ir.waitReady(ctx, o.inspector); err != nil {
		ir.dumpLogs()
		t.Fatalf("Ironic did not come up: %v", err)
	}
	return ir
}

func writeTemplate(t testing.TB, path, text string, vals any) {
	t.Helper()
	var buf bytes.Buffer
	if err := template.Must(template.New(path).Parse(text)).Execute(&buf, vals); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t testing.TB, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func (ir *Ironic) spawn(name string, args ...string) {
	cmd := exec.Command(name, args...)
	if ir.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ir.netns, name}, args...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(ir.StateDir, filepath.Base(name)+".stdout"))
	if err != nil {
		ir.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		ir.t.Fatalf("starting %s: %v", name, err)
	}
	ir.procs = append(ir.procs, cmd)
	if name == "ironic" {
		ir.ironicProc = cmd
	}
}

func (ir *Ironic) startImageServer() {
	addr := ir.imgAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		ir.t.Fatal(err)
	}
	ir.imgAddr = l.Addr().String()
	ir.ImageBase = "http://" + ir.imgAddr
	files := http.FileServer(http.Dir(ir.ImageDir))
	ir.imgSv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rate := ir.throttle.Load(); rate > 0 {
			files.ServeHTTP(&slowWriter{ResponseWriter: w, rate: rate}, r)
			return
		}
		files.ServeHTTP(w, r)
	})}
	go ir.imgSv.Serve(l)
}

// slowWriter paces a response to rate bytes per second.
type slowWriter struct {
	http.ResponseWriter
	rate int64
}

func (s *slowWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), 64<<10)
		m, err := s.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		time.Sleep(time.Duration(float64(time.Second) * float64(k) / float64(s.rate)))
		b = b[k:]
	}
	return n, nil
}

// ThrottleImages makes the image server send rate bytes per second (0:
// full speed), so a test can act while a download runs.
func (ir *Ironic) ThrottleImages(rate int64) { ir.throttle.Store(rate) }

// StopImageServer closes the image server and every download in flight.
func (ir *Ironic) StopImageServer() { ir.imgSv.Close() }

// StartImageServer serves images again on the same address.
func (ir *Ironic) StartImageServer() { ir.startImageServer() }

// startImageServerInNS serves ImageDir inside the namespace, where the
// conductor HEADs image URLs and the guest downloads them.
func (ir *Ironic) startImageServerInNS(host string, port int) {
	ir.ImageBase = fmt.Sprintf("http://%s:%d", host, port)
	ir.spawn("/usr/bin/python3", "-m", "http.server", "--bind", host, "--directory", ir.ImageDir, fmt.Sprint(port))
}

// ImageURL is the URL of a file the test put into ImageDir.
func (ir *Ironic) ImageURL(name string) string { return ir.ImageBase + "/" + name }

// Restart stops the ironic process (API and conductor) and starts it
// again with the same configuration and database, as an operator's
// restart would; it returns once the API answers again.
func (ir *Ironic) Restart(ctx context.Context) error {
	for i, c := range ir.procs {
		if c == ir.ironicProc {
			stopProc(c)
			ir.procs = append(ir.procs[:i], ir.procs[i+1:]...)
			break
		}
	}
	ir.spawn("ironic", "--config-file", filepath.Join(ir.StateDir, "ironic.conf"))
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return ir.waitReady(ctx, false)
}

func stopProc(c *exec.Cmd) {
	if c.Process == nil {
		return
	}
	syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// stop ends every process by pid (its process group), with a bound.
func (ir *Ironic) stop() {
	if ir.t.Failed() {
		ir.dumpLogs()
	}
	for _, c := range ir.procs {
		stopProc(c)
	}
	if ir.imgSv != nil {
		ir.imgSv.Close()
	}
}

func (ir *Ironic) dumpLogs() {
	for _, p := range []string{ir.LogPath, ir.InspectorLog, filepath.Join(ir.StateDir, "ironic.stdout")} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) > 150 {
			lines = lines[len(lines)-150:]
		}
		ir.t.Logf("---- last lines of %s ----\n%s", p, strings.Join(lines, "\n"))
	}
}

// Log returns Ironic's log so far.
func (ir *Ironic) Log() string {
	b, _ := os.ReadFile(ir.LogPath)
	return string(b)
}

func (ir *Ironic) waitReady(ctx context.Context, inspector bool) error {
	for {
		for _, c := range ir.procs {
			if c.ProcessState != nil {
				return fmt.Errorf("%s exited", c.Path)
			}
		}
		var drivers struct {
			Drivers []struct {
				Name string `json:"name"`
			} `json:"drivers"`
		}
		err := ir.Do(ctx, http.MethodGet, "/v1/drivers", nil, &drivers)
		ready := false
		if err == nil {
			for _, d := range drivers.Drivers {
				ready = ready || d.Name == "manual-management"
			}
		}
		if ready && inspector {
			resp, err := ir.http.Get(ir.InspectorURL + "/")
			if err == nil {
				resp.Body.Close()
			} else {
				ready = false
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Do calls Ironic's API with the harness's microversion.
func (ir *Ironic) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, ir.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", APIVersion)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ir.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// InspectionData reads the introspection data ironic-inspector stored for
// a node (GET /v1/introspection/<uuid>/data; needs WithMetal3Inspector,
// which stores it).
func (ir *Ironic) InspectionData(ctx context.Context, uuid string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ir.InspectorURL+"/v1/introspection/"+uuid+"/data", nil)
	if err != nil {
		return nil, err
	}
	resp, err := ir.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET introspection data of %s: HTTP %d: %s", uuid, resp.StatusCode, body)
	}
	var data map[string]any
	return data, json.Unmarshal(body, &data)
}

// Node is the part of a node tests look at.
type Node struct {
	UUID               string         `json:"uuid"`
	ProvisionState     string         `json:"provision_state"`
	TargetProvision    *string        `json:"target_provision_state"`
	LastError          *string        `json:"last_error"`
	PowerState         *string        `json:"power_state"`
	Properties         map[string]any `json:"properties"`
	InstanceInfo       map[string]any `json:"instance_info"`
	DriverInternalInfo map[string]any `json:"driver_internal_info"`
}

// Err is the node's last_error or "".
func (n *Node) Err() string {
	if n.LastError == nil {
		return ""
	}
	return *n.LastError
}

// EnrollManualNode creates a node with the interfaces that complete a
// direct deploy (manual-management, pxe, fake power, noop management and
// network) and a port with mac, and returns its UUID.
func (ir *Ironic) EnrollManualNode(ctx context.Context, name, mac string, props map[string]any, extra map[string]any) (string, error) {
	body := map[string]any{
		"name": name, "driver": "manual-management", "boot_interface": "pxe", "deploy_interface": "direct",
		"power_interface": "fake", "management_interface": "noop", "network_interface": "noop",
		"automated_clean": false, "properties": props,
		"driver_info": map[string]any{"deploy_kernel": ir.ImageURL("agent.kernel"), "deploy_ramdisk": ir.ImageURL("agent.ramdisk")},
	}
	for k, v := range extra {
		body[k] = v
	}
	var n Node
	if err := ir.Do(ctx, http.MethodPost, "/v1/nodes", body, &n); err != nil {
		return "", err
	}
	if mac != "" {
		if err := ir.Do(ctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": mac, "pxe_enabled": true}, nil); err != nil {
			return "", err
		}
	}
	return n.UUID, nil
}

// GetNode reads a node.
func (ir *Ironic) GetNode(ctx context.Context, uuid string) (*Node, error) {
	var n Node
	return &n, ir.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &n)
}

// Patch applies a JSON patch to a node.
func (ir *Ironic) Patch(ctx context.Context, uuid string, ops ...map[string]any) error {
	return ir.Do(ctx, http.MethodPatch, "/v1/nodes/"+uuid, ops, nil)
}

// Provision asks for a provision state change; extra carries
// clean_steps, configdrive and the like.
func (ir *Ironic) Provision(ctx context.Context, uuid, target string, extra map[string]any) error {
	body := map[string]any{"target": target}
	for k, v := range extra {
		body[k] = v
	}
	// A node is locked while a previous transition finishes: Ironic says
	// to retry, and so the harness does, for a bounded time.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ir.Do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/provision", body, nil)
		if err == nil || !strings.Contains(err.Error(), "HTTP 409") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ErrFailedState is returned when a node lands in a failure state that
// was not the one waited for.
var ErrFailedState = errors.New("node reached a failure state")

// WaitState polls until the node is in want, fails fast on an unexpected failure state, and gives up
// after timeout with the current state and last_error. each, if given,
// sees every polled node.
func (ir *Ironic) WaitState(ctx context.Context, uuid, want string, timeout time.Duration, each func(*Node)) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *Node
	for {
		n, err := ir.GetNode(ctx, uuid)
		if err == nil {
			last = n
			if each != nil {
				each(n)
			}
			// Ironic saves a failed state before the last_error that says
			// why: read a failed node until its last_error is there too.
			if strings.HasSuffix(n.ProvisionState, "failed") && n.Err() == "" && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			if n.ProvisionState == want {
				return n, nil
			}
			if strings.HasSuffix(n.ProvisionState, "failed") && n.ProvisionState != want {
				return n, fmt.Errorf("%w: %s (last_error: %s)", ErrFailedState, n.ProvisionState, n.Err())
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return last, fmt.Errorf("node %s still %q after %s, want %q (last_error: %s)", uuid, last.ProvisionState, timeout, want, last.Err())
			}
			return nil, fmt.Errorf("node %s: %w (last error: %v)", uuid, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
