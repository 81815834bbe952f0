package agent

import (
	"context"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goipa/goipa/disk"
	"github.com/goipa/goipa/image"
)

// imageEngine is the ImageWriter backed by the image package, configured
// from the agent's parameters and Ironic's lookup overrides.
type imageEngine struct {
	cfg    *Config
	log    *slog.Logger
	lookup func() map[string]any

	downloaded, written prometheus.Counter
	writes              *prometheus.CounterVec
	stages              *prometheus.CounterVec
	seconds             prometheus.Histogram
}

// NewImageEngine returns the agent's ImageWriter.
func NewImageEngine(cfg *Config, log *slog.Logger, lookupConfig func() map[string]any) ImageWriter {
	return &imageEngine{cfg: cfg, log: log, lookup: lookupConfig,
		downloaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "goipa_image_downloaded_bytes_total", Help: "Image bytes downloaded (and hashed)."}),
		written:    prometheus.NewCounter(prometheus.CounterOpts{Name: "goipa_image_written_bytes_total", Help: "Disk image bytes written to devices."}),
		writes:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goipa_image_writes_total", Help: "Image writes, by result."}, []string{"result"}),
		stages:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goipa_image_stage_seconds_total", Help: "Busy time of each image pipeline stage (download, hash, decompress, write)."}, []string{"stage"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "goipa_image_write_seconds", Help: "Wall time of image writes, download to final sync.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800}}),
	}
}

// Collectors are the engine's metrics, which the agent serves.
func (e *imageEngine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.downloaded, e.written, e.writes, e.stages, e.seconds}
}

func (e *imageEngine) WriteImage(ctx context.Context, ii *ImageInfo, device string, progress func(any)) error {
	md5 := true
	permittedFormats := []string{"raw", "qcow2", "iso"}
	if lc := e.lookup(); lc != nil {
		if v, ok := lc["agent_md5_checksum_enable"].(bool); ok {
			md5 = v
		}
		if l, ok := lc["permitted_image_formats"].([]any); ok {
			permittedFormats = nil
			for _, f := range l {
				if s, ok := f.(string); ok {
					permittedFormats = append(permittedFormats, s)
				}
			}
		}
	}
	auth := ""
	if ii.RequestAuthorization != "" {
		if b, err := base64.StdEncoding.DecodeString(ii.RequestAuthorization); err == nil {
			auth = string(b)
		}
	}
	user, pass := "", ""
	if ii.AuthStrategy == "http_basic" {
		user, pass = ii.User, ii.Password
	}
	req := image.Request{
		URLs:   ii.URLs,
		Device: device,
		Checksum: image.ChecksumSpec{
			OSHashAlgo: ii.OSHashAlgo, OSHashValue: ii.OSHashValue, Checksum: ii.Checksum, MD5Allowed: md5,
		},
		HTTP: image.HTTPOptions{
			Proxies: ii.Proxies, NoProxy: ii.NoProxy, Insecure: e.cfg.Insecure, CAFile: e.cfg.CAFile,
			Timeout: e.cfg.ImageConnectionTimeout, BasicUser: user, BasicPassword: pass, Authorization: auth,
			Parallel: e.cfg.ImageParallel,
		},
		Retry:            image.Retry{Attempts: e.cfg.ImageConnectionRetries, Interval: e.cfg.ImageRetryInterval},
		PermittedFormats: permittedFormats,
		MaxDuration:      e.cfg.ImageMaxDuration,
		Progress:         &image.Progress{},
		Log:              e.log,
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				snap := req.Progress.Snapshot()
				progress(snap)
				e.log.Info("image progress", "device", device, "downloaded", snap["downloaded_bytes"], "written", snap["written_bytes"], "stage_seconds", snap["stage_seconds"])
			}
		}
	}()
	res, err := image.Write(ctx, req)
	e.downloaded.Add(float64(req.Progress.Downloaded.Load()))
	for stage, sec := range req.Progress.Stages() {
		e.stages.WithLabelValues(stage).Add(sec)
	}
	if err != nil {
		e.writes.WithLabelValues("failed").Inc()
		return err
	}
	e.writes.WithLabelValues("ok").Inc()
	e.written.Add(float64(res.Written))
	e.seconds.Observe(res.Duration.Seconds())
	progress(req.Progress.Snapshot())
	e.log.Info("image verified", "device", device, "algo", res.Algo, "digest", res.Digest, "bytes", res.Written, "duration", res.Duration.Round(time.Millisecond))
	return nil
}

// configDrive is the ConfigDriveWriter backed by the disk package.
type configDrive struct{ log *slog.Logger }

// NewConfigDriveWriter returns the agent's ConfigDriveWriter.
func NewConfigDriveWriter(log *slog.Logger) ConfigDriveWriter { return configDrive{log: log} }

func (c configDrive) WriteConfigDrive(ctx context.Context, device string, iso []byte) (string, error) {
	return disk.WriteConfigDrive(ctx, device, iso)
}
