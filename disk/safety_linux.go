package disk

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// InUseError says why a device may not be written.
type InUseError struct {
	Device string
	Reason string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("refusing to write %s: %s", e.Device, e.Reason)
}

// members returns the kernel names and device numbers ("M:m") of dev,
// its partitions and whatever is stacked on them (holders).
func members(dev string) (kname string, devnos map[string]string, err error) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", nil, err
	}
	kname = filepath.Base(real)
	sys := filepath.Join("/sys/class/block", kname)
	if _, err := os.Stat(sys); err != nil {
		return "", nil, fmt.Errorf("%s is not a block device", dev)
	}
	devnos = map[string]string{}
	var walk func(name string, depth int)
	walk = func(name string, depth int) {
		if depth > 8 {
			return
		}
		dir := filepath.Join("/sys/class/block", name)
		if b, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
			devnos[strings.TrimSpace(string(b))] = name
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), name) && e.Name() != name {
				if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
					walk(e.Name(), depth+1)
				}
			}
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, h := range holders {
			walk(h.Name(), depth+1)
		}
	}
	walk(kname, 0)
	return kname, devnos, nil
}

// CheckSafe refuses a device when it, a partition of it, or a device
// stacked on it holds a mounted filesystem (the agent's own included) or
// active swap. Every writer calls it first.
func CheckSafe(ctx context.Context, dev string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, devnos, err := members(dev)
	if err != nil {
		return &InUseError{Device: dev, Reason: err.Error()}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return &InUseError{Device: dev, Reason: "cannot read the mount table: " + err.Error()}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if name, ok := devnos[fields[2]]; ok {
			return &InUseError{Device: dev, Reason: fmt.Sprintf("/dev/%s is mounted on %s", name, fields[4])}
		}
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) == 0 {
				continue
			}
			for _, name := range devnos {
				if filepath.Base(fs[0]) == name {
					return &InUseError{Device: dev, Reason: fmt.Sprintf("/dev/%s is active swap", name)}
				}
			}
		}
	}
	return nil
}
