// Package docs holds the project's documentation; its test keeps the
// package map in architecture.md true to the code.
package docs

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/credence-ledger/credence/"

// TestArchitectureMapMatchesImports: every arrow of the map in
// architecture.md ("## Packages", the block of "pkg ──▶ a, b") is an
// import of the code, and every import between our packages is on the
// map, as `go list` shows them.
func TestArchitectureMapMatchesImports(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	want := mapOf(t, doc)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-tags", "badgerdb", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	got := make(map[string][]string)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		if pkg == "docs" {
			continue // this test
		}
		var deps []string
		for _, d := range f[1:] {
			if strings.HasPrefix(d, module) {
				deps = append(deps, strings.TrimPrefix(d, module))
			}
		}
		slices.Sort(deps)
		got[pkg] = deps
	}
	for pkg, deps := range got {
		w, ok := want[pkg]
		if !ok {
			t.Errorf("package %s is not on the map in architecture.md (it imports %v)", pkg, deps)
			continue
		}
		if !slices.Equal(w, deps) {
			t.Errorf("architecture.md: %s ──▶ %s; the code imports %s", pkg, strings.Join(w, ", "), strings.Join(deps, ", "))
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			t.Errorf("architecture.md maps %s, which is not a package", pkg)
		}
	}
}

// mapOf reads the first fenced block after "## Packages": one package per
// line, "pkg ──▶ dep, dep" or a bare "pkg" that imports none of ours.
func mapOf(t *testing.T, doc []byte) map[string][]string {
	t.Helper()
	m := make(map[string][]string)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	section, fence := false, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if fence {
				t.Fatal("architecture.md: the package map's block is not closed")
			}
			section = line == "## Packages"
		case section && strings.HasPrefix(line, "```"):
			if fence {
				return m
			}
			fence = true
		case fence && strings.TrimSpace(line) != "":
			pkg, deps, _ := strings.Cut(line, "──▶")
			pkg = strings.TrimSpace(pkg)
			var ds []string
			for _, d := range strings.Split(deps, ",") {
				if d = strings.TrimSpace(d); d != "" {
					ds = append(ds, d)
				}
			}
			slices.Sort(ds)
			if _, dup := m[pkg]; dup {
				t.Fatalf("architecture.md maps %s twice", pkg)
			}
			m[pkg] = ds
		}
	}
	t.Fatal(`architecture.md has no package map: a fenced block after "## Packages"`)
	return nil
}
