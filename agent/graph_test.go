package agent

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"testing"
)

// TestNoPackageImportsAgent keeps agent on top of the package graph:
// no package of the module but the goipa command depends on agent,
// directly or through another package, nor do their tests. It reads
// the graph from `go list -deps -json ./...`.
func TestNoPackageImportsAgent(t *testing.T) {
	const module = "github.com/goipa/goipa"
	const self = module + "/agent"
	allowed := map[string]bool{self: true, module + "/cmd/goipa": true}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the package graph: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-json", "./...")
	cmd.Dir = ".."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(out)
	seen := 0
	for {
		var p struct {
			ImportPath                      string
			Deps, TestImports, XTestImports []string
			Standard                        bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard || len(p.ImportPath) < len(module) || p.ImportPath[:len(module)] != module {
			continue
		}
		seen++
		if allowed[p.ImportPath] {
			continue
		}
		if slices.Contains(p.Deps, self) {
			t.Errorf("%s depends on agent: domain packages must not import it", p.ImportPath)
		}
		if slices.Contains(p.TestImports, self) || slices.Contains(p.XTestImports, self) {
			t.Errorf("the tests of %s import agent", p.ImportPath)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if seen < 10 {
		t.Fatalf("go list named only %d of the module's packages", seen)
	}
}
