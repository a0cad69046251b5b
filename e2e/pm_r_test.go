package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rscript finds R; make test installs it (scripts/r.sh).
func rscript(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("Rscript")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("R is not installed; scripts/r.sh install installs it")
		}
		t.Skip("R is not installed (run `make deps`)")
	}
	return p
}

// buildRPackage runs R CMD build on a test package's source tree.
func buildRPackage(t *testing.T, name string) string {
	t.Helper()
	out := t.TempDir()
	src := filepath.Join(repoRoot(t), "packagemanager", "cran", "testdata", "src", name)
	run(t, out, nil, "R", "CMD", "build", "--no-build-vignettes", "--no-manual", src)
	matches, _ := filepath.Glob(filepath.Join(out, "*.tar.gz"))
	if len(matches) != 1 {
		t.Fatalf("R CMD build %s made %v", name, matches)
	}
	return matches[0]
}

// TestPackageManagerR: packages added with `atrium pm add` are installed
// by R's own install.packages from the default cran repository, including
// an archived older version, and a snapshot keeps the old view.
func TestPackageManagerR(t *testing.T) {
	rs := rscript(t)
	hello1, hello2, greeter := buildRPackage(t, "hello1"), buildRPackage(t, "hello2"), buildRPackage(t, "greeter")
	p, dataDir := suiteWithIdentity(t)
	pm := p.urls["Package Manager"]

	atriumCLI(t, dataDir, "", "pm", "add", "--source", "cran-local", "--path", hello1)
	snapOut := atriumCLI(t, dataDir, "", "pm", "snapshot", "--repo", "cran", "-o", "json")
	atriumCLI(t, dataDir, "", "pm", "add", "--source", "cran-local", "--path", hello2+","+greeter)
	// The same file again is a no-op; a broken one is refused.
	if out := atriumCLI(t, dataDir, "", "pm", "add", "--source", "cran-local", "--path", hello2); !strings.Contains(out, "already") {
		t.Errorf("re-adding: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "broken_1.0.tar.gz")
	os.WriteFile(bad, []byte("not a tarball"), 0o644)
	cmd := exec.Command(atriumBinary(t), "pm", "add", "--source", "cran-local", "--path", bad)
	cmd.Env = append(os.Environ(), "ATRIUM_SHARED_DATA_DIR="+dataDir)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("a broken package was added:\n%s", out)
	}

	lib := t.TempDir()
	script := `
options(repos = c(atrium = "` + pm + `/cran/latest"))
ap <- available.packages()
stopifnot(ap["atriumhello", "Version"] == "1.1.0")
stopifnot(ap["atriumgreeter", "Imports"] != "")
cat("fields:", paste(colnames(ap)[colnames(ap) %in% c("MD5sum", "NeedsCompilation", "License")], collapse=","), "\n")
cat("md5:", ap["atriumhello", "MD5sum"], "\n")
install.packages("atriumgreeter", lib = "` + lib + `", quiet = TRUE)
library(atriumhello, lib.loc = "` + lib + `")
cat("installed:", as.character(packageVersion("atriumhello", lib.loc = "` + lib + `")), "\n")
old <- "` + pm + `/cran/latest/src/contrib/Archive/atriumhello/atriumhello_1.0.0.tar.gz"
lib2 <- tempfile(); dir.create(lib2)
install.packages(old, repos = NULL, type = "source", lib = lib2, quiet = TRUE)
cat("archived:", as.character(packageVersion("atriumhello", lib.loc = lib2)), "\n")
`
	out := run(t, "", nil, rs, "-e", script)
	for _, want := range []string{"fields: License,MD5sum,NeedsCompilation", "installed: 1.1.0", "archived: 1.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("R output lacks %q:\n%s", want, out)
		}
	}

	// The snapshot from before 1.1.0 still serves 1.0.0 as current.
	var txn string
	if i := strings.Index(snapOut, `"transaction": `); i >= 0 {
		txn = strings.TrimSpace(strings.SplitN(snapOut[i+len(`"transaction": `):], ",", 2)[0])
	}
	frozen := run(t, "", nil, rs, "-e", `options(repos = c(a = "`+pm+`/cran/`+txn+`")); cat(available.packages()[, "Version"])`)
	if strings.TrimSpace(frozen) != "1.0.0" {
		t.Errorf("snapshot %s shows %q, want only 1.0.0", txn, frozen)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
