package firmware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goipa/goipa/image"
)

// NVMeDevice is the admin commands an NVMe update sends; tests replace
// it to see what would reach a controller.
type NVMeDevice interface {
	Identify(ctx context.Context) ([]byte, error)
	SlotLog(ctx context.Context) ([]byte, error)
	MPSMIN() uint8
	Download(ctx context.Context, c Chunk, data []byte) error
	// Commit reports whether the image waits for a reset to run.
	Commit(ctx context.Context, slot int, action CommitAction) (pendingReset bool, err error)
	Close() error
}

// Devlink is the devlink calls a NIC update makes.
type Devlink interface {
	Info(ctx context.Context, bus, dev string) (DevlinkInfo, error)
	Flash(ctx context.Context, r FlashRequest, progress func(FlashStatus)) error
	// ActivateFirmware is `devlink dev reload ... action fw_activate`.
	ActivateFirmware(ctx context.Context, bus, dev string) error
}

// Image is one firmware image to put on one device.
type Image struct {
	URL string
	// Checksum takes image_info's forms: "algo:hex", bare hex (the
	// algorithm by its length) or a checksums file's URL.
	Checksum  string
	Target    string
	Component string // devlink component ("" for the driver's default)
	Slot      int    // NVMe slot, 0 for the first writable one
	Activate  string // "reset" (default) or "now"
}

// PendingReset is VersionAfter when the new firmware runs only after
// the next reset.
const PendingReset = "pending reset"

// Report is what happened to one target.
type Report struct {
	Target        string            `json:"target"`
	Device        string            `json:"device"`
	Kind          Kind              `json:"kind"`
	Component     string            `json:"component,omitempty"`
	Slot          int               `json:"slot,omitempty"`
	VersionBefore string            `json:"version_before"`
	VersionAfter  string            `json:"version_after"`
	Checksum      string            `json:"checksum"`
	Seconds       float64           `json:"seconds"`
	Before        map[string]string `json:"versions_before,omitempty"`
	After         map[string]string `json:"versions_after,omitempty"`
}

// Progress is where an update is.
type Progress struct {
	Target  string `json:"target"`
	Stage   string `json:"stage"` // download, flash, commit
	Message string `json:"message,omitempty"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
}

// ErrInvalidImage is a malformed image entry; nothing was fetched.
var ErrInvalidImage = errors.New("invalid firmware image")

// TargetError names the target an update failed on.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("firmware update of %s: %v", e.Target, e.Err)
}
func (e *TargetError) Unwrap() error { return e.Err }

// Updater updates firmware.
type Updater struct {
	root       string
	client     *http.Client
	retry      image.Retry
	stageDir   string
	md5Allowed bool
	progress   func(Progress)
	log        *slog.Logger
	openNVMe   func(root, name string) (NVMeDevice, error)
	prepare    func(dir string) error
	devlink    Devlink
	now        func() time.Time
}

// Option configures an Updater.
type Option func(*Updater)

// WithRoot reads sysfs and /dev under root (tests).
func WithRoot(root string) Option { return func(u *Updater) { u.root = root } }

// WithHTTPClient fetches images with client (the agent's download
// client: proxies, CA, timeouts).
func WithHTTPClient(c *http.Client) Option { return func(u *Updater) { u.client = c } }

// WithRetry sets how a broken download is resumed.
func WithRetry(r image.Retry) Option { return func(u *Updater) { u.retry = r } }

// WithStageDir keeps downloaded images in dir, which the kernel's
// firmware loader must search (see UseFirmwareDir) for NIC updates.
func WithStageDir(dir string) Option { return func(u *Updater) { u.stageDir = dir } }

// WithStagePreparation runs prepare on the stage directory once every
// target has been checked and before the first image is downloaded,
// when a devlink device is among the targets (the
// ramdisk passes UseFirmwareDir: the directory becomes a tmpfs and the
// kernel's firmware search path).
func WithStagePreparation(prepare func(dir string) error) Option {
	return func(u *Updater) { u.prepare = prepare }
}

// WithMD5 accepts MD5 checksums.
func WithMD5(allowed bool) Option { return func(u *Updater) { u.md5Allowed = allowed } }

// WithProgress receives progress.
func WithProgress(f func(Progress)) Option { return func(u *Updater) { u.progress = f } }

// WithLogger logs to l.
func WithLogger(l *slog.Logger) Option { return func(u *Updater) { u.log = l } }

// WithNVMe opens NVMe controllers with open (tests).
func WithNVMe(open func(root, name string) (NVMeDevice, error)) Option {
	return func(u *Updater) { u.openNVMe = open }
}

// WithDevlink talks to devlink through d (tests).
func WithDevlink(d Devlink) Option { return func(u *Updater) { u.devlink = d } }

// New returns an Updater working on the machine's devices unless the
// options say otherwise.
func New(opts ...Option) *Updater {
	u := &Updater{root: "/", client: http.DefaultClient, retry: image.Retry{Attempts: 3, Interval: 5 * time.Second},
		stageDir: os.TempDir(), log: slog.Default(), now: time.Now}
	u.openNVMe, u.devlink = systemDevices()
	for _, o := range opts {
		o(u)
	}
	return u
}

func (u *Updater) report(p Progress) {
	if u.progress != nil {
		u.progress(p)
	}
}

// plan is one image, checked and ready.
type plan struct {
	img    Image
	dev    Device
	sum    image.Checksum
	nvme   NVMeDevice
	caps   NVMeFirmwareCaps
	action CommitAction
	slot   int
	before map[string]string
	verBef string
	file   string
}

// ValidateImage checks an entry's form, without touching anything.
func ValidateImage(img Image) error {
	if img.URL == "" {
		return fmt.Errorf("%w: no url", ErrInvalidImage)
	}
	if img.Target == "" {
		return fmt.Errorf("%w: %s: no target", ErrInvalidImage, img.URL)
	}
	if img.Checksum == "" {
		return fmt.Errorf("%w: %s: no checksum (firmware images are always verified)", ErrInvalidImage, img.URL)
	}
	switch img.Activate {
	case "", "reset", "now":
	default:
		return fmt.Errorf("%w: %s: activate must be \"reset\" or \"now\", not %q", ErrInvalidImage, img.Target, img.Activate)
	}
	if img.Slot < 0 || img.Slot > 7 {
		return fmt.Errorf("%w: %s: slot %d is not 1 to 7", ErrInvalidImage, img.Target, img.Slot)
	}
	return nil
}

// Update puts each image on its target, in order. Every image is
// checked, every target resolved and asked whether it can take the
// update, and every image downloaded and verified before the first
// device is touched; a failure there sends nothing. A failure while a
// device is being updated stops there (its old firmware keeps running:
// neither devlink nor an uncommitted NVMe download changes what runs),
// with the reports of the targets already done.
func (u *Updater) Update(ctx context.Context, images []Image) ([]Report, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: no images given", ErrInvalidImage)
	}
	var plans []*plan
	defer func() {
		for _, p := range plans {
			if p.nvme != nil {
				p.nvme.Close()
			}
			if p.file != "" {
				os.Remove(p.file)
			}
		}
	}()
	seen := map[string]bool{}
	for _, img := range images {
		if err := ValidateImage(img); err != nil {
			return nil, err
		}
		sum, err := image.ChecksumSpec{Checksum: img.Checksum, MD5Allowed: u.md5Allowed, ImageURL: img.URL}.Resolve(ctx, u.client)
		if err != nil {
			return nil, &TargetError{img.Target, fmt.Errorf("%w: checksum: %w", ErrInvalidImage, err)}
		}
		p := &plan{img: img, sum: sum}
		plans = append(plans, p)
		if p.dev, err = Resolve(u.root, img.Target); err != nil {
			return nil, &TargetError{img.Target, err}
		}
		key := p.dev.Name + "\x00" + img.Component
		if seen[key] {
			return nil, &TargetError{img.Target, fmt.Errorf("%w: %s is given twice", ErrInvalidImage, p.dev)}
		}
		seen[key] = true
		if err := u.preflight(ctx, p); err != nil {
			return nil, &TargetError{img.Target, err}
		}
	}
	if u.prepare != nil && slices.ContainsFunc(plans, func(p *plan) bool { return p.dev.Kind == KindDevlink }) {
		if err := u.prepare(u.stageDir); err != nil {
			return nil, fmt.Errorf("preparing %s for the images: %w", u.stageDir, err)
		}
	}
	for _, p := range plans {
		if err := u.fetch(ctx, p); err != nil {
			return nil, &TargetError{p.img.Target, err}
		}
	}
	var reports []Report
	for _, p := range plans {
		r, err := u.apply(ctx, p)
		if err != nil {
			return reports, &TargetError{p.img.Target, err}
		}
		reports = append(reports, r)
	}
	return reports, nil
}

// preflight asks the device whether it takes the update, before
// anything is downloaded.
func (u *Updater) preflight(ctx context.Context, p *plan) error {
	switch p.dev.Kind {
	case KindNVMe:
		if p.img.Component != "" {
			return fmt.Errorf("%w: component %q: NVMe controllers have slots, not components", ErrInvalidImage, p.img.Component)
		}
		dev, err := u.openNVMe(u.root, p.dev.Name)
		if err != nil {
			return err
		}
		p.nvme = dev
		id, err := dev.Identify(ctx)
		if err != nil {
			return err
		}
		if p.caps, err = ParseNVMeIdentify(id); err != nil {
			return err
		}
		p.action = CommitReplaceActivateOnReset
		if p.img.Activate == "now" {
			p.action = CommitReplaceActivateNow
		}
		p.slot = p.img.Slot
		if p.slot == 0 {
			p.slot = p.caps.FirstWritableSlot()
		}
		if err := p.caps.CheckUpdate(p.slot, p.action); err != nil {
			return fmt.Errorf("%s (%s): %w", p.dev, p.caps.Model, err)
		}
		log, err := u.slotLog(ctx, dev)
		if err != nil {
			return err
		}
		p.before, p.verBef = log.Slots(), log.Running()
		if p.verBef == "" {
			p.verBef = p.caps.Revision
		}
	case KindDevlink:
		if p.img.Slot != 0 {
			return fmt.Errorf("%w: slot %d: slots are for NVMe controllers", ErrInvalidImage, p.img.Slot)
		}
		info, err := u.devlink.Info(ctx, p.dev.Bus, p.dev.Dev)
		if err != nil {
			return fmt.Errorf("%s has no devlink device to flash: %w", p.dev, err)
		}
		p.before, p.verBef = versions(info), runningVersion(info, p.img.Component)
	}
	return nil
}

func (u *Updater) slotLog(ctx context.Context, dev NVMeDevice) (NVMeSlotLog, error) {
	b, err := dev.SlotLog(ctx)
	if err != nil {
		return NVMeSlotLog{}, err
	}
	return ParseNVMeSlotLog(b)
}

// versions flattens devlink info into "running.<name>" and
// "stored.<name>" keys.
func versions(info DevlinkInfo) map[string]string {
	m := map[string]string{}
	for k, v := range info.Running {
		m["running."+k] = v
	}
	for k, v := range info.Stored {
		m["stored."+k] = v
	}
	return m
}

// runningVersion is the component's running version, or, without a
// component, "fw" (devlink's generic name) or all of them.
func runningVersion(info DevlinkInfo, component string) string {
	for _, k := range []string{component, "fw", "fw.mgmt"} {
		if v, ok := info.Running[k]; ok && k != "" {
			return v
		}
	}
	var parts []string
	for k, v := range info.Running {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// fetch downloads the image into the stage directory and verifies it
// on the way: the file is only kept when the checksum matched.
func (u *Updater) fetch(ctx context.Context, p *plan) error {
	src, err := image.NewSource(p.img.URL, u.client, image.HTTPOptions{})
	if err != nil {
		return err
	}
	rc, err := image.OpenChecked(ctx, src, u.retry, p.sum, func(err error) {
		u.log.Warn("firmware download interrupted, resuming", "url", p.img.URL, "error", err)
	})
	if err != nil {
		return fmt.Errorf("fetching %s: %w", p.img.URL, err)
	}
	defer rc.Close()
	if err := os.MkdirAll(u.stageDir, 0o700); err != nil {
		return fmt.Errorf("staging %s: %w", p.img.URL, err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	name := filepath.Join(u.stageDir, "goipa-fw-"+hex.EncodeToString(rnd[:])+".bin")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("staging %s: %w", p.img.URL, err)
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("fetching %s: %w", p.img.URL, err)
	}
	p.file = name
	return nil
}

func (u *Updater) apply(ctx context.Context, p *plan) (Report, error) {
	start := u.now()
	r := Report{Target: p.img.Target, Device: p.dev.Name, Kind: p.dev.Kind, Component: p.img.Component,
		VersionBefore: p.verBef, Checksum: p.sum.Algo + ":" + p.sum.Value, Before: p.before}
	var err error
	switch p.dev.Kind {
	case KindNVMe:
		r.Slot = p.slot
		err = u.applyNVMe(ctx, p, &r)
	case KindDevlink:
		err = u.applyDevlink(ctx, p, &r)
	}
	r.Seconds = u.now().Sub(start).Seconds()
	return r, err
}

func (u *Updater) applyNVMe(ctx context.Context, p *plan, r *Report) error {
	data, err := os.ReadFile(p.file)
	if err != nil {
		return err
	}
	chunks, err := PlanDownload(int64(len(data)), p.caps.Granularity(), p.caps.MaxTransfer(p.nvme.MPSMIN()))
	if err != nil {
		return fmt.Errorf("%s: %w", p.dev, err)
	}
	for _, c := range chunks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: download stopped at byte %d (nothing committed; the old firmware runs): %w", p.dev, c.Offset, err)
		}
		if err := p.nvme.Download(ctx, c, data[c.Offset:c.Offset+c.Length]); err != nil {
			return fmt.Errorf("%w (nothing committed; the old firmware runs)", err)
		}
		u.report(Progress{Target: p.img.Target, Stage: "download", Done: c.Offset + c.Length, Total: int64(len(data))})
	}
	u.report(Progress{Target: p.img.Target, Stage: "commit", Message: fmt.Sprintf("slot %d, action %d", p.slot, p.action)})
	pending, err := p.nvme.Commit(ctx, p.slot, p.action)
	if err != nil {
		return err
	}
	log, err := u.slotLog(ctx, p.nvme)
	if err != nil {
		return err
	}
	r.After = log.Slots()
	r.VersionAfter = PendingReset
	if p.action == CommitReplaceActivateNow && !pending {
		r.VersionAfter = log.Running()
	}
	return nil
}

func (u *Updater) applyDevlink(ctx context.Context, p *plan, r *Report) error {
	req := FlashRequest{Bus: p.dev.Bus, Dev: p.dev.Dev, FileName: filepath.Base(p.file), Component: p.img.Component}
	err := u.devlink.Flash(ctx, req, func(s FlashStatus) {
		if s.End {
			// devlink's end notification carries no status: it would wipe
			// the driver's last message ("Flashing done") from the progress.
			return
		}
		u.report(Progress{Target: p.img.Target, Stage: "flash", Message: strings.TrimSpace(s.Component + " " + s.Message),
			Done: int64(s.Done), Total: int64(s.Total)})
	})
	if err != nil {
		return err
	}
	if p.img.Activate == "now" {
		u.report(Progress{Target: p.img.Target, Stage: "activate", Message: "devlink dev reload action fw_activate"})
		if err := u.devlink.ActivateFirmware(ctx, p.dev.Bus, p.dev.Dev); err != nil {
			return fmt.Errorf("%s: flashed, but activating it failed (it runs after the next reset): %w", p.dev, err)
		}
	}
	info, err := u.devlink.Info(ctx, p.dev.Bus, p.dev.Dev)
	if err != nil {
		return fmt.Errorf("%s: devlink dev info after the flash: %w", p.dev, err)
	}
	r.After = versions(info)
	r.VersionAfter = PendingReset
	if v := runningVersion(info, p.img.Component); v != p.verBef {
		r.VersionAfter = v
	}
	return nil
}

// Expectation is a version a device must run.
type Expectation struct {
	Target, Version string
}

// ErrVersionMismatch says a device does not run the version asked for.
var ErrVersionMismatch = errors.New("device does not run the firmware version asked for")

// Running reads the version a target runs: an NVMe controller's active
// slot, a devlink device's running versions (any of them may match).
func (u *Updater) Running(ctx context.Context, target string) (Device, []string, error) {
	dev, err := Resolve(u.root, target)
	if err != nil {
		return dev, nil, err
	}
	switch dev.Kind {
	case KindNVMe:
		c, err := u.openNVMe(u.root, dev.Name)
		if err != nil {
			return dev, nil, err
		}
		defer c.Close()
		log, err := u.slotLog(ctx, c)
		if err != nil {
			return dev, nil, err
		}
		return dev, []string{log.Running()}, nil
	default:
		info, err := u.devlink.Info(ctx, dev.Bus, dev.Dev)
		if err != nil {
			return dev, nil, fmt.Errorf("%s: devlink dev info: %w", dev, err)
		}
		var vs []string
		for _, v := range info.Running {
			vs = append(vs, v)
		}
		slices.Sort(vs)
		return dev, vs, nil
	}
}

// Verify checks that every device runs the version asked for, and
// names each that does not.
func (u *Updater) Verify(ctx context.Context, want []Expectation) (map[string][]string, error) {
	if len(want) == 0 {
		return nil, fmt.Errorf("%w: no devices given", ErrInvalidImage)
	}
	found := map[string][]string{}
	var bad []string
	for _, w := range want {
		if w.Target == "" || w.Version == "" {
			return nil, fmt.Errorf("%w: each device needs a target and a version", ErrInvalidImage)
		}
		dev, vs, err := u.Running(ctx, w.Target)
		if err != nil {
			return found, &TargetError{w.Target, err}
		}
		found[w.Target] = vs
		if !slices.Contains(vs, w.Version) {
			bad = append(bad, fmt.Sprintf("%s (%s) runs %s, not %s", w.Target, dev, strings.Join(vs, ", "), w.Version))
		}
	}
	if len(bad) > 0 {
		return found, fmt.Errorf("%w: %s", ErrVersionMismatch, strings.Join(bad, "; "))
	}
	return found, nil
}
