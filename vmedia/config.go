package vmedia

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReadConfigFiles reads IPA's configuration files under etcRoot in the
// order oslo.config reads them for `ironic-python-agent --config-dir
// /etc/ironic-python-agent.d/` (how IPA's ramdisks start it): the
// default file /etc/ironic-python-agent.conf, then every *.conf of the
// config directory in sorted order, each overriding the ones before.
// A file that cannot be read or parsed is reported and skipped: the
// others still apply.
func ReadConfigFiles(etcRoot string) ([]ConfigFile, []error) {
	paths := []string{filepath.Join(etcRoot, "ironic-python-agent.conf")}
	dir := filepath.Join(etcRoot, "ironic-python-agent.d")
	if entries, err := os.ReadDir(dir); err == nil {
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			paths = append(paths, filepath.Join(dir, n))
		}
	}
	var files []ConfigFile
	var errs []error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			if !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		ini, err := ParseINI(f)
		f.Close()
		if err != nil {
			errs = append(errs, &FileError{Path: p, Err: err})
			continue
		}
		files = append(files, ConfigFile{Name: p, INI: ini})
	}
	return files, errs
}

// FileError names the configuration file an error is about.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }
