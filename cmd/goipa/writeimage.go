package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/goipa/goipa/image"
)

func init() {
	register("write-image", "verify and write an image to a device (the deploy engine alone)", runWriteImage)
}

func runWriteImage(ctx context.Context, args []string) error {
	fs := newFlags("write-image", "--source URL --checksum VALUE|none --device PATH [flags]")
	src := fs.String("source", "", "image URL: http(s)://, oci://registry/repo:tag (or @sha256:...) or file://")
	sum := fs.String("checksum", "", "expected digest: bare hex, algo:hex, or a checksums file URL (optional for oci://: the blob digest); "+
		"none writes without verification (local debugging, CI image builds; never a default, and never accepted by the agent)")
	parallel := fs.Int("parallel", image.DefaultParallel, "range requests at once for a large image (1: one stream)")
	dev := fs.String("device", "", "the block device to write (required; never guessed)")
	formats := fs.String("formats", "raw,qcow2", "disk formats allowed inside any compression")
	insecure := fs.Bool("insecure", false, "do not verify the server's TLS certificate")
	md5 := fs.Bool("allow-md5", false, "accept an MD5 checksum")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *src == "" || *dev == "" || (*sum == "" && !strings.HasPrefix(*src, "oci://")) {
		return usageFail(fs, "--source, --checksum (optional for oci://) and --device are required")
	}
	// Written out, never implied: an absent --checksum is an error above.
	unverified := *sum == "none"
	if unverified {
		*sum = ""
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p := &image.Progress{}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := p.Snapshot()
				fmt.Fprintf(os.Stderr, "\r%8.1f MiB written, %6.1f MiB/s   ", float64(p.Written.Load())/(1<<20), s["download_rate_mib_s"])
			}
		}
	}()
	res, err := image.Write(ctx, image.Request{
		URLs: []string{*src}, Device: *dev, Checksum: image.ChecksumSpec{Checksum: *sum, MD5Allowed: *md5}, Unverified: unverified,
		HTTP: image.HTTPOptions{Insecure: *insecure, Parallel: *parallel}, Retry: image.Retry{Attempts: 9, Interval: 10 * time.Second},
		PermittedFormats: strings.Split(*formats, ","), Progress: p, Log: log,
	})
	close(done)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	verified := fmt.Sprintf("%s %s verified", res.Algo, res.Digest)
	if unverified {
		verified = "NOT verified (--checksum none)"
	}
	fmt.Printf("wrote %d bytes (%s, compression %q) to %s in %s, %s\n", res.Written, res.Format, res.Compression,
		res.Device, res.Duration.Round(time.Millisecond), verified)
	st := p.Stages()
	fmt.Printf("busy seconds: download %.2f, hash %.2f, decompress %.2f, write %.2f\n", st["download"], st["hash"], st["decompress"], st["write"])
	return nil
}
