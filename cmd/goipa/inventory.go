package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/goipa/goipa/inventory"
)

func init() {
	register("inventory", "print the hardware inventory as Ironic sees it (or the install disk)", runInventory)
}

func runInventory(ctx context.Context, args []string) error {
	fs := newFlags("inventory", "[--devices=PATH,...] [--root-device-hints=JSON] [--bootif=MAC]")
	devices := fs.String("devices", "", "only these block devices, comma separated (goipa-devices)")
	bootif := fs.String("bootif", "", "the PXE NIC's MAC (BOOTIF)")
	hints := fs.String("root-device-hints", "", `print the install disk these hints choose, e.g. '{"size": ">= 20"}'`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var devs []string
	for _, d := range strings.Split(*devices, ",") {
		if d = strings.TrimSpace(d); d != "" {
			devs = append(devs, d)
		}
	}
	opts := []inventory.Option{inventory.WithDevices(devs), inventory.WithBootIF(*bootif), inventory.WithLogger(log)}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if *hints != "" {
		var h map[string]any
		if err := json.Unmarshal([]byte(*hints), &h); err != nil {
			return fmt.Errorf("--root-device-hints is not a JSON object: %w", err)
		}
		disks, err := inventory.BlockDevices(ctx, opts...)
		if err != nil {
			return err
		}
		d, err := inventory.SelectRootDisk(disks, h)
		if err != nil {
			return err
		}
		return enc.Encode(d)
	}
	inv, err := inventory.Collect(ctx, opts...)
	if err != nil {
		return err
	}
	return enc.Encode(inv)
}
