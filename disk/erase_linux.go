package disk

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EraseOptions are IPA's erase knobs, which Ironic sends in
// driver_internal_info (spec 5.1).
type EraseOptions struct {
	EnableNVMeSecureErase       bool // agent_enable_nvme_secure_erase
	EnableATASecureErase        bool // agent_enable_ata_secure_erase
	ContinueIfSecureEraseFailed bool // agent_continue_if_secure_erase_failed (else ..._ata_erase_failed)
	Iterations                  int  // agent_erase_devices_iterations: random passes
	Zeroize                     bool // agent_erase_devices_zeroize: a final zero pass
	SkipReadOnly                bool // agent_erase_skip_read_only
	Concurrency                 int  // disk_erasure_concurrency; 0 = every disk at once
	// Express: hardware-assisted methods only (NVMe, ATA, discard with
	// guaranteed zeros), falling back to a metadata wipe
	// (erase_devices_express).
	Express bool
	// NoDiscard never counts a discard as the erase (goipa's own knob,
	// not IPA's: `goipa erase --method overwrite`, overwrite tests and
	// benchmarks on loop devices, which discard).
	NoDiscard bool
}

// EraseOptionsFrom reads the knobs from driver_internal_info, with IPA's
// defaults for missing keys; a key of the wrong type is an error.
func EraseOptionsFrom(dii map[string]any) (EraseOptions, error) {
	o := EraseOptions{EnableNVMeSecureErase: true, EnableATASecureErase: true, Iterations: 1, Zeroize: true}
	var errs []error
	getBool := func(k string, dst *bool) bool {
		v, ok := dii[k]
		if !ok || v == nil {
			return false
		}
		switch b := v.(type) {
		case bool:
			*dst = b
		case string:
			switch strings.ToLower(b) {
			case "true", "1", "yes", "on":
				*dst = true
			case "false", "0", "no", "off":
				*dst = false
			default:
				errs = append(errs, fmt.Errorf("%s=%q is not a boolean", k, b))
			}
		default:
			errs = append(errs, fmt.Errorf("%s=%v is not a boolean", k, v))
		}
		return true
	}
	getInt := func(k string, dst *int) {
		switch n := dii[k].(type) {
		case nil:
		case float64:
			if n < 0 || n != float64(int(n)) {
				errs = append(errs, fmt.Errorf("%s=%v is not a whole number >= 0", k, n))
			} else {
				*dst = int(n)
			}
		default:
			errs = append(errs, fmt.Errorf("%s=%v is not a number", k, n))
		}
	}
	getBool("agent_enable_nvme_secure_erase", &o.EnableNVMeSecureErase)
	getBool("agent_enable_ata_secure_erase", &o.EnableATASecureErase)
	if !getBool("agent_continue_if_secure_erase_failed", &o.ContinueIfSecureEraseFailed) {
		getBool("agent_continue_if_ata_erase_failed", &o.ContinueIfSecureEraseFailed)
	}
	getInt("agent_erase_devices_iterations", &o.Iterations)
	getBool("agent_erase_devices_zeroize", &o.Zeroize)
	getBool("agent_erase_skip_read_only", &o.SkipReadOnly)
	getInt("disk_erasure_concurrency", &o.Concurrency)
	return o, errors.Join(errs...)
}

// Target is one device to erase, as the inventory describes it.
type Target struct {
	Path, Serial, Model string
	Size                int64
	ReadOnly            bool
}

// DeviceReport is one device's line in the audit report: what was done
// to it, when, and whether a read-back confirmed it.
type DeviceReport struct {
	Device    string   `json:"device"`
	Serial    string   `json:"serial"`
	Model     string   `json:"model"`
	SizeBytes int64    `json:"size_bytes"`
	Methods   []string `json:"methods"`
	// Passed over says why each stronger method was not used (not
	// supported, or failed where IPA's flags allow going on).
	PassedOver   []string  `json:"passed_over,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	Verification string    `json:"verification"`
	Skipped      string    `json:"skipped,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// Progress reports bytes done of bytes planned for one device.
type Progress func(device string, done, total int64)

// EraseDevices erases every target at once (or Concurrency at a time),
// each with the strongest method it supports (decisions.md: NVMe
// sanitize or format, ATA security erase, SCSI sanitize, discard with
// guaranteed zeros, overwrite), IPA's option gates and fallbacks, and a
// sampled read-back afterwards. The other disks finish even when one
// fails; the error then names every failed disk.
func EraseDevices(ctx context.Context, targets []Target, opts EraseOptions, progress Progress, log *slog.Logger) ([]DeviceReport, error) {
	if log == nil {
		log = slog.Default()
	}
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	conc := opts.Concurrency
	if conc <= 0 || conc > len(targets) {
		conc = len(targets)
	}
	reports := make([]DeviceReport, len(targets))
	sem := make(chan struct{}, max(conc, 1))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func(i int, t Target) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i] = eraseOne(ctx, t, opts, progress, log)
		}(i, t)
	}
	wg.Wait()
	var failed []string
	for _, r := range reports {
		if r.Error != "" {
			failed = append(failed, r.Device+": "+r.Error)
		}
	}
	if len(failed) > 0 {
		return reports, errors.New(strings.Join(failed, "; "))
	}
	return reports, nil
}

func eraseOne(ctx context.Context, t Target, o EraseOptions, progress Progress, log *slog.Logger) (r DeviceReport) {
	r = DeviceReport{Device: t.Path, Serial: t.Serial, Model: t.Model, SizeBytes: t.Size, Start: time.Now(), Methods: []string{}}
	defer func() { r.End = time.Now() }()
	fail := func(err error) DeviceReport {
		r.Error = err.Error()
		r.End = time.Now()
		log.Error("erase failed", "device", t.Path, "error", err)
		return r
	}
	if t.ReadOnly {
		if o.SkipReadOnly {
			r.Skipped = "read-only device"
			return r
		}
		return fail(errors.New("device is read-only (set agent_erase_skip_read_only to skip it)"))
	}
	if err := CheckSafe(ctx, t.Path); err != nil {
		return fail(err)
	}
	secureDone := false // a firmware method (sanitize, format, ATA erase) ran
	// secure handles a firmware method's outcome as IPA does: an error
	// fails the device unless agent_continue_if_secure_erase_failed says
	// to go on (express always goes on, to a metadata wipe at worst).
	secure := func(what, method string, err error) error {
		switch {
		case err == nil:
			r.Methods = append(r.Methods, method)
			secureDone = true
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case o.Express:
			log.Warn(what+" failed; express erase falls back", "device", t.Path, "error", err)
			r.PassedOver = append(r.PassedOver, what+" failed: "+err.Error())
			return nil
		case o.ContinueIfSecureEraseFailed:
			log.Warn(what+" failed; going on as agent_continue_if_secure_erase_failed allows", "device", t.Path, "error", err)
			r.PassedOver = append(r.PassedOver, what+" failed: "+err.Error())
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	// decisions.md's order: NVMe sanitize, else Format NVM; ATA security
	// erase; SCSI sanitize; discard when it guarantees zeros; overwrite.
	// SCSI sanitize sits under agent_enable_ata_secure_erase because IPA's
	// ATA step is its firmware erase for every disk that is not NVMe.
	switch {
	case isNVMe(t.Path) && o.EnableNVMeSecureErase:
		method, err := NVMeSanitize(ctx, t.Path, 0, log)
		if errors.Is(err, ErrSanitizeUnsupported) {
			log.Info("no usable NVMe sanitize; formatting", "device", t.Path, "reason", err)
			r.PassedOver = append(r.PassedOver, "nvme sanitize: "+err.Error())
			method, err = NVMeFormat(ctx, t.Path)
		}
		if err := secure("NVMe secure erase", method, err); err != nil {
			return fail(err)
		}
	case !isNVMe(t.Path) && o.EnableATASecureErase:
		method, err := ATASecureErase(ctx, t.Path, log)
		if errors.Is(err, ErrATASecurityUnsupported) {
			log.Info("no ATA security erase", "device", t.Path, "reason", err)
			r.PassedOver = append(r.PassedOver, "ata: "+err.Error())
		} else if err := secure("ATA secure erase", method, err); err != nil {
			return fail(err)
		}
		if !secureDone && !o.Express && !errors.Is(err, ErrATASecurityUnsupported) && err != nil {
			break // the ATA erase failed and we go on: a SCSI sanitize will not help an ATA drive
		}
		if !secureDone && !o.Express {
			method, err := SCSISanitize(ctx, t.Path, 0, log)
			if errors.Is(err, ErrSanitizeUnsupported) {
				log.Info("no SCSI sanitize", "device", t.Path, "reason", err)
				r.PassedOver = append(r.PassedOver, "scsi sanitize: "+err.Error())
			} else if err := secure("SCSI sanitize", method, err); err != nil {
				return fail(err)
			}
		}
	}
	if secureDone {
		if err := verifyZero(t.Path, 64); err != nil {
			// Some controllers leave crypto-erased blocks unreadable or
			// random: record it rather than call the disk dirty.
			r.Verification = "sampled read-back after " + r.Methods[len(r.Methods)-1] + ": " + err.Error()
		} else {
			r.Verification = "64 sampled 4 KiB blocks read back as zeros (direct I/O)"
		}
		log.Info("erased", "device", t.Path, "methods", r.Methods, "duration", time.Since(r.Start).Round(time.Millisecond))
		return r
	}
	if !o.NoDiscard {
		method, err := DiscardErase(ctx, t.Path, func(done, total int64) { progress(t.Path, done, total) })
		switch {
		case err == nil:
			if verr := verifyZero(t.Path, 64); verr != nil {
				log.Warn("the device did not read back zeros after discard; overwriting", "device", t.Path, "error", verr)
				r.Methods = append(r.Methods, method+"-unverified")
				r.PassedOver = append(r.PassedOver, "discard: did not read back zeros: "+verr.Error())
				break
			}
			r.Methods = append(r.Methods, method)
			r.Verification = "64 sampled 4 KiB blocks read back as zeros (direct I/O)"
			log.Info("erased", "device", t.Path, "methods", r.Methods, "duration", time.Since(r.Start).Round(time.Millisecond))
			return r
		case ctx.Err() != nil:
			return fail(ctx.Err())
		default:
			// Discard only deallocates: one that fails or cannot promise
			// zeros leaves nothing the overwrite does not cover.
			log.Info("no discard erase", "device", t.Path, "reason", err)
			r.PassedOver = append(r.PassedOver, "discard: "+err.Error())
		}
	}
	if o.Express {
		if err := WipeMetadata(ctx, t.Path); err != nil {
			return fail(err)
		}
		r.Methods = append(r.Methods, "metadata")
		r.Verification = "not applicable (metadata wipe)"
		return r
	}
	if err := Overwrite(ctx, t.Path, o.Iterations, o.Zeroize, func(done, total int64) { progress(t.Path, done, total) }); err != nil {
		return fail(err)
	}
	for i := 0; i < o.Iterations; i++ {
		r.Methods = append(r.Methods, "overwrite-random")
	}
	if o.Zeroize {
		r.Methods = append(r.Methods, "overwrite-zero")
		if err := verifyZero(t.Path, 64); err != nil {
			return fail(fmt.Errorf("verification: %w", err))
		}
		r.Verification = "64 sampled 4 KiB blocks read back as zeros (direct I/O)"
	} else {
		r.Verification = "not verifiable: last pass was random and no zero pass was asked for"
	}
	log.Info("erased", "device", t.Path, "methods", r.Methods, "duration", time.Since(r.Start).Round(time.Millisecond))
	return r
}

func isNVMe(dev string) bool { return strings.HasPrefix(filepathBase(dev), "nvme") }

func filepathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

const (
	eraseChunk   = 8 << 20
	eraseWorkers = 4
)

// alignedBuffer returns page-aligned memory, as O_DIRECT needs.
func alignedBuffer(n int) ([]byte, func(), error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { unix.Munmap(b) }, nil
}

// keystream fills b with AES-CTR output for byte offset off of the pass:
// CTR can start anywhere, so writers work on any chunk in parallel and a
// read-back can regenerate what should be there.
func keystream(block cipher.Block, nonce [16]byte, off int64, b []byte) {
	var iv [16]byte
	hi := binary.BigEndian.Uint64(nonce[:8])
	lo := binary.BigEndian.Uint64(nonce[8:])
	n := uint64(off / 16)
	nlo := lo + n
	if nlo < lo {
		hi++
	}
	binary.BigEndian.PutUint64(iv[:8], hi)
	binary.BigEndian.PutUint64(iv[8:], nlo)
	clear(b)
	cipher.NewCTR(block, iv[:]).XORKeyStream(b, b)
}

// Overwrite writes passes random passes of a fast CSPRNG stream (AES-CTR
// with a fresh key per pass) and then, with zero, a zero pass, using
// large aligned O_DIRECT writes from several writers. Cancelling ctx stops
// it between blocks.
func Overwrite(ctx context.Context, dev string, passes int, zero bool, progress func(done, total int64)) error {
	if err := CheckSafe(ctx, dev); err != nil {
		return err
	}
	if err := ReleaseMapPartitions(dev); err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return err
	}
	total := size * int64(passes+b2i(zero))
	var done atomic.Int64
	if progress == nil {
		progress = func(int64, int64) {}
	}
	for p := 0; p < passes; p++ {
		var key [16]byte
		var nonce [16]byte
		rand.Read(key[:])
		rand.Read(nonce[:])
		block, _ := aes.NewCipher(key[:])
		if err := parallelWrite(ctx, f, size, func(off int64, b []byte) { keystream(block, nonce, off, b) }, &done, total, progress); err != nil {
			return fmt.Errorf("random pass %d on %s: %w", p+1, dev, err)
		}
	}
	if zero {
		if err := parallelWrite(ctx, f, size, func(off int64, b []byte) { clear(b) }, &done, total, progress); err != nil {
			return fmt.Errorf("zero pass on %s: %w", dev, err)
		}
	}
	return f.Sync()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parallelWrite fills and writes the device with eraseWorkers writers.
// progress is called by one writer at a time with a count that never goes
// down, so callers (the agent's progress, tests) need no locking of their
// own.
func parallelWrite(ctx context.Context, f *os.File, size int64, fill func(off int64, b []byte), done *atomic.Int64, total int64, progress func(int64, int64)) error {
	var progressMu sync.Mutex
	var reported int64
	report := func(n int64) {
		progressMu.Lock()
		defer progressMu.Unlock()
		if d := done.Add(n); d > reported {
			reported = d
			progress(d, total)
		}
	}
	offsets := make(chan int64)
	errc := make(chan error, eraseWorkers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < eraseWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, free, err := alignedBuffer(eraseChunk)
			if err != nil {
				errc <- err
				cancel()
				return
			}
			defer free()
			for off := range offsets {
				n := min(int64(eraseChunk), size-off)
				b := buf[:n]
				fill(off, b)
				if _, err := f.WriteAt(b, off); err != nil {
					errc <- fmt.Errorf("at byte %d: %w", off, err)
					cancel()
					return
				}
				report(n)
			}
		}()
	}
	var err error
feed:
	for off := int64(0); off < size; off += eraseChunk {
		select {
		case offsets <- off:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(offsets)
	wg.Wait()
	select {
	case werr := <-errc:
		return werr
	default:
	}
	return err
}

// verifyZero reads n 4 KiB blocks spread over the whole device with
// direct I/O (past the page cache) and checks they are zero.
func verifyZero(dev string, n int) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := DeviceSize(f)
	if err != nil {
		return err
	}
	buf, free, err := alignedBuffer(4096)
	if err != nil {
		return err
	}
	defer free()
	blocks := size / 4096
	if blocks == 0 {
		return nil
	}
	for i := 0; i < n; i++ {
		var r [8]byte
		rand.Read(r[:])
		blk := int64(binary.LittleEndian.Uint64(r[:]) % uint64(blocks))
		switch i {
		case 0:
			blk = 0
		case 1:
			blk = blocks - 1
		}
		if _, err := f.ReadAt(buf, blk*4096); err != nil {
			return fmt.Errorf("reading block %d: %w", blk, err)
		}
		for _, c := range buf {
			if c != 0 {
				return fmt.Errorf("block at byte %d is not zero", blk*4096)
			}
		}
	}
	return nil
}

// nvmeAdminCmd is struct nvme_admin_cmd from linux/nvme_ioctl.h.
type nvmeAdminCmd struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	Cdw2, Cdw3  uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	Cdw10       uint32
	Cdw11       uint32
	Cdw12       uint32
	Cdw13       uint32
	Cdw14       uint32
	Cdw15       uint32
	TimeoutMs   uint32
	Result      uint32
}

const (
	nvmeIoctlID       = 0x4e40     // _IO('N', 0x40)
	nvmeIoctlAdminCmd = 0xc0484e41 // _IOWR('N', 0x41, struct nvme_admin_cmd)
	nvmeIdentify      = 0x06
	nvmeFormatNVM     = 0x80
)

func nvmeAdmin(f *os.File, cmd *nvmeAdminCmd) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(cmd)))
	if errno != 0 {
		return errno
	}
	return nil
}

// NVMeFormat runs Format NVM with secure erase on an NVMe namespace, as
// IPA does with nvme-cli: cryptographic erase when the controller
// supports it, user-data erase otherwise, keeping the LBA format.
func NVMeFormat(ctx context.Context, dev string) (string, error) {
	if err := CheckSafe(ctx, dev); err != nil {
		return "", err
	}
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	nsid, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlID, 0)
	if errno != 0 {
		return "", fmt.Errorf("%s is not an NVMe namespace: %w", dev, errno)
	}
	buf, free, err := alignedBuffer(4096)
	if err != nil {
		return "", err
	}
	defer free()
	cmd := nvmeAdminCmd{Opcode: nvmeIdentify, Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), DataLen: 4096, Cdw10: 1}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return "", fmt.Errorf("identify controller: %w", err)
	}
	ctrl, err := ParseIdentifyController(buf)
	if err != nil {
		return "", err
	}
	if !ctrl.FormatSupported {
		return "", errors.New("the controller does not support Format NVM (OACS bit 1 clear)")
	}
	cmd = nvmeAdminCmd{Opcode: nvmeIdentify, NSID: uint32(nsid), Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), DataLen: 4096, Cdw10: 0}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return "", fmt.Errorf("identify namespace: %w", err)
	}
	lbaf := buf[26] & 0xf // FLBAS: the format in use
	ses, method := uint8(1), "nvme-format-user-data-erase"
	if ctrl.CryptoErase {
		ses, method = 2, "nvme-format-crypto-erase"
	}
	cmd = nvmeAdminCmd{Opcode: nvmeFormatNVM, NSID: uint32(nsid), Cdw10: FormatCdw10(lbaf, ses), TimeoutMs: 3600 * 1000}
	if err := nvmeAdmin(f, &cmd); err != nil {
		return "", fmt.Errorf("format NVM: %w", err)
	}
	rereadPartitions(f)
	return method, nil
}
