package image

import (
	"context"
	"encoding/base64"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Engine writes the images deploys ask for with the agent's download
// settings, and counts what it wrote for the agent's metrics.
type Engine struct {
	cfg EngineConfig

	downloaded, written prometheus.Counter
	writes              *prometheus.CounterVec
	stages              *prometheus.CounterVec
	seconds             prometheus.Histogram
}

// EngineConfig is what every image write of an agent shares.
type EngineConfig struct {
	// HTTP holds the agent's CA, verification, timeout and parallel
	// downloads; an Info adds its proxies and credentials per image.
	HTTP        HTTPOptions
	Retry       Retry
	MaxDuration time.Duration // 0 = no limit
	// Lookup returns Ironic's lookup config, read at each write for
	// agent_md5_checksum_enable and permitted_image_formats.
	Lookup func() map[string]any
	Log    *slog.Logger
}

// NewEngine returns an Engine and its metrics.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Engine{cfg: cfg,
		downloaded: prometheus.NewCounter(prometheus.CounterOpts{Name: "goipa_image_downloaded_bytes_total", Help: "Image bytes downloaded (and hashed)."}),
		written:    prometheus.NewCounter(prometheus.CounterOpts{Name: "goipa_image_written_bytes_total", Help: "Disk image bytes written to devices."}),
		writes:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goipa_image_writes_total", Help: "Image writes, by result."}, []string{"result"}),
		stages:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goipa_image_stage_seconds_total", Help: "Busy time of each image pipeline stage (download, hash, decompress, write)."}, []string{"stage"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "goipa_image_write_seconds", Help: "Wall time of image writes, download to final sync.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800}}),
	}
}

// Collectors are the engine's metrics, which the agent serves.
func (e *Engine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.downloaded, e.written, e.writes, e.stages, e.seconds}
}

// Request turns ii into the Request that writes it to device: the
// engine's settings, the lookup's checksum and format policy, and the
// image's own proxies and server credentials.
func (e *Engine) Request(ii *Info, device string) Request {
	md5 := true
	permittedFormats := []string{"raw", "qcow2", "iso"}
	if e.cfg.Lookup != nil {
		lc := e.cfg.Lookup()
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
	httpOpts := e.cfg.HTTP
	httpOpts.Proxies, httpOpts.NoProxy = ii.Proxies, ii.NoProxy
	if ii.RequestAuthorization != "" {
		if b, err := base64.StdEncoding.DecodeString(ii.RequestAuthorization); err == nil {
			httpOpts.Authorization = string(b)
		}
	}
	if ii.AuthStrategy == "http_basic" {
		httpOpts.BasicUser, httpOpts.BasicPassword = ii.User, ii.Password
	}
	return Request{
		URLs:   ii.URLs,
		Device: device,
		Checksum: ChecksumSpec{
			OSHashAlgo: ii.OSHashAlgo, OSHashValue: ii.OSHashValue, Checksum: ii.Checksum, MD5Allowed: md5,
		},
		HTTP:             httpOpts,
		Retry:            e.cfg.Retry,
		PermittedFormats: permittedFormats,
		MaxDuration:      e.cfg.MaxDuration,
		Progress:         &Progress{},
		Log:              e.cfg.Log,
	}
}

// WriteImage writes ii to device (Write), reporting progress every two
// seconds and once at the end.
func (e *Engine) WriteImage(ctx context.Context, ii *Info, device string, progress func(any)) error {
	req := e.Request(ii, device)
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
				e.cfg.Log.Info("image progress", "device", device, "downloaded", snap["downloaded_bytes"], "written", snap["written_bytes"], "stage_seconds", snap["stage_seconds"])
			}
		}
	}()
	res, err := Write(ctx, req)
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
	e.cfg.Log.Info("image verified", "device", device, "algo", res.Algo, "digest", res.Digest, "bytes", res.Written, "duration", res.Duration.Round(time.Millisecond))
	return nil
}
