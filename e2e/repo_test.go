package e2e_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

const modulePrefix = "github.com/atrium-suite/atrium/"

// layers is the import direction: a module may import only modules of a
// lower layer (shared ← products ← suite ← cmd; e2e sees everything). Two
// products sit in the same layer, so neither may import the other: they
// talk over HTTP.
var layers = map[string]int{
	"shared": 0, "connect": 1, "workbench": 1, "packagemanager": 1, "suite": 2, "cmd": 3, "e2e": 4,
}

func moduleOf(importPath string) string {
	rest, ok := strings.CutPrefix(importPath, modulePrefix)
	if !ok {
		return ""
	}
	mod, _, _ := strings.Cut(rest, "/")
	return mod
}

func TestImportDirection(t *testing.T) {
	for mod, layer := range layers {
		if mod == "e2e" {
			continue
		}
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", modulePrefix+mod+"/...")
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", mod, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			depMod := moduleOf(dep)
			if depMod == "" || depMod == mod {
				continue
			}
			if layers[depMod] >= layer {
				t.Errorf("%s imports %s: only lower layers may be imported (shared ← products ← suite ← cmd)", mod, dep)
			}
		}
	}
}

// goModules lists the directories of go.work's modules.
func goModules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := modfile.ParseWork("go.work", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, u := range wf.Use {
		dirs = append(dirs, strings.TrimPrefix(u.Path, "./"))
	}
	return dirs
}

// TestWorkspace keeps go.work, the go.mod files and their replace lines in
// step: every module is in go.work, every sibling it requires is replaced
// by its directory (so GOWORK=off builds), and no two modules pin different
// versions of one dependency.
func TestWorkspace(t *testing.T) {
	root := repoRoot(t)
	mods := goModules(t)
	var onDisk []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "go.mod" && !strings.Contains(p, "testdata") {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			onDisk = append(onDisk, rel)
		}
		return nil
	})
	slices.Sort(onDisk)
	if want := slices.Sorted(slices.Values(mods)); !slices.Equal(onDisk, want) {
		t.Errorf("go.work uses %v, but go.mod files are in %v", want, onDisk)
	}
	versions := map[string]map[string]string{} // dependency → version → module
	for _, dir := range mods {
		b, err := os.ReadFile(filepath.Join(root, dir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		mf, err := modfile.Parse(dir+"/go.mod", b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if mf.Module.Mod.Path != modulePrefix+dir {
			t.Errorf("%s/go.mod declares %s", dir, mf.Module.Mod.Path)
		}
		replaced := map[string]string{}
		for _, r := range mf.Replace {
			replaced[r.Old.Path] = r.New.Path
		}
		for _, r := range mf.Require {
			if sib := moduleOf(r.Mod.Path); sib != "" {
				if got := replaced[r.Mod.Path]; got != "../"+sib {
					t.Errorf("%s/go.mod requires %s without `replace %s => ../%s`", dir, r.Mod.Path, r.Mod.Path, sib)
				}
				continue
			}
			if versions[r.Mod.Path] == nil {
				versions[r.Mod.Path] = map[string]string{}
			}
			versions[r.Mod.Path][r.Mod.Version] = dir
		}
	}
	for dep, vs := range versions {
		if len(vs) > 1 {
			t.Errorf("modules pin different versions of %s: %v (run `make tidy`)", dep, vs)
		}
	}
}

// TestBuildsWithoutWorkspace proves the replace lines are enough.
func TestBuildsWithoutWorkspace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./atrium")
	cmd.Dir = filepath.Join(repoRoot(t), "cmd")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOWORK=off go build: %v\n%s", err, out)
	}
}

// TestPackageDocs: every package says what it is for, exactly once.
func TestPackageDocs(t *testing.T) {
	root := repoRoot(t)
	for _, mod := range goModules(t) {
		filepath.WalkDir(filepath.Join(root, mod), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			pkgs, err := parser.ParseDir(token.NewFileSet(), p, func(fi os.FileInfo) bool {
				return !strings.HasSuffix(fi.Name(), "_test.go")
			}, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			for name, pkg := range pkgs {
				var docs []string
				for file, f := range pkg.Files {
					if f.Doc != nil {
						docs = append(docs, filepath.Base(file))
					}
				}
				rel, _ := filepath.Rel(root, p)
				switch {
				case len(docs) == 0:
					t.Errorf("package %s (%s) has no doc comment", name, rel)
				case len(docs) > 1:
					t.Errorf("package %s (%s) has doc comments in %d files: %v", name, rel, len(docs), docs)
				}
			}
			return nil
		})
	}
}
