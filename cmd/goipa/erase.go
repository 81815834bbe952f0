package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/goipa/goipa/disk"
)

func init() {
	register("erase", "erase one named device (the cleaning engine alone)", runErase)
}

func runErase(ctx context.Context, args []string) error {
	fs := newFlags("erase", "--device PATH [--method METHOD] [flags]")
	dev := fs.String("device", "", "the block device to erase (required; never guessed)")
	method := fs.String("method", "auto", "metadata, overwrite, nvme (Format NVM), nvme-sanitize, ata (ATA security erase), scsi (SCSI SANITIZE), discard, or auto (the order of erase_devices: NVMe sanitize/format, ATA, SCSI sanitize, discard with guaranteed zeros, overwrite)")
	action := fs.String("action", "auto", "for nvme-sanitize and scsi: block, crypto, overwrite or auto (block erase, else crypto erase)")
	passes := fs.Int("iterations", 1, "random passes for overwrite")
	zero := fs.Bool("zeroize", true, "a final zero pass for overwrite")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dev == "" {
		return usageFail(fs, "--device is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	progress := func(done, total int64) {
		fmt.Fprintf(os.Stderr, "\r%5.1f%%", 100*float64(done)/float64(max(total, 1)))
	}
	switch *method {
	case "metadata":
		return disk.WipeMetadata(ctx, *dev)
	case "overwrite":
		err := disk.Overwrite(ctx, *dev, *passes, *zero, progress)
		fmt.Fprintln(os.Stderr)
		return err
	case "nvme":
		m, err := disk.NVMeFormat(ctx, *dev)
		if err == nil {
			fmt.Println(m)
		}
		return err
	case "nvme-sanitize", "scsi":
		acts := map[string][2]uint8{"auto": {0, 0},
			"block":     {disk.NVMeSanitizeBlockErase, disk.SanitizeBlockErase},
			"crypto":    {disk.NVMeSanitizeCryptoErase, disk.SanitizeCryptoErase},
			"overwrite": {disk.NVMeSanitizeOverwrite, disk.SanitizeOverwrite}}
		a, ok := acts[*action]
		if !ok {
			return usageFail(fs, "unknown --action %q", *action)
		}
		var m string
		var err error
		if *method == "scsi" {
			m, err = disk.SCSISanitize(ctx, *dev, a[1], log)
		} else {
			m, err = disk.NVMeSanitize(ctx, *dev, a[0], log)
		}
		if err == nil {
			fmt.Println(m)
		}
		return err
	case "ata":
		m, err := disk.ATASecureErase(ctx, *dev, log)
		if err == nil {
			fmt.Println(m)
		}
		return err
	case "discard":
		m, err := disk.DiscardErase(ctx, *dev, progress)
		fmt.Fprintln(os.Stderr)
		if err == nil {
			fmt.Println(m)
		}
		return err
	case "auto":
		opts, _ := disk.EraseOptionsFrom(nil)
		opts.Iterations, opts.Zeroize = *passes, *zero
		reports, err := disk.EraseDevices(ctx, []disk.Target{{Path: *dev}}, opts,
			func(_ string, done, total int64) { progress(done, total) }, log)
		fmt.Fprintln(os.Stderr)
		b, _ := json.MarshalIndent(reports, "", "  ")
		fmt.Println(string(b))
		return err
	}
	return usageFail(fs, "unknown --method %q", *method)
}
