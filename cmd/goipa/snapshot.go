package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/goipa/goipa/inventory"
)

func init() {
	register("snapshot", "write a tar.gz of the /sys and /proc parts the inventory reads (for bug reports and tests)", runSnapshot)
}

func runSnapshot(ctx context.Context, args []string) error {
	fs := newFlags("snapshot", "[-o FILE]")
	out := fs.String("o", "-", "output file (- for stdout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return inventory.Snapshot(ctx, w)
}

// Markers around a snapshot printed on the console by init when the
// kernel command line has goipa-snapshot-console=1: the way to get a
// machine's shape out of a ramdisk that has no other way out.
const (
	snapshotBegin = "goipa-snapshot-begin"
	snapshotEnd   = "goipa-snapshot-end"
)

func printSnapshot(ctx context.Context, w io.Writer) error {
	var buf bytes.Buffer
	if err := inventory.Snapshot(ctx, &buf); err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(buf.Bytes())
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, snapshotBegin)
	for len(enc) > 0 {
		n := min(len(enc), 120)
		fmt.Fprintln(bw, enc[:n])
		enc = enc[n:]
	}
	fmt.Fprintln(bw, snapshotEnd)
	return bw.Flush()
}
