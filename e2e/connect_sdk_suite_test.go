package e2e_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConnectSDKSuite runs posit-sdk's own integration tests against Atrium
// Connect (scripts/posit-sdk-suite.sh) and holds the results to the table
// in docs/connect-sdk-suite.md: a test listed as passing must pass, and
// every other test must end as the table says, so the table is what a
// reader gets. Each test file runs against a fresh `atrium up`.
func TestConnectSDKSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("posit-sdk's integration suite takes about a minute (deploys Flask apps); skipped under -short")
	}
	root := repoRoot(t)
	script := filepath.Join(root, "scripts", "posit-sdk-suite.sh")

	// The venv and the suite's source come from the package index; without
	// them the suite cannot run at all, which is not a result.
	prep := exec.Command(script, "--prepare")
	prep.Stderr = os.Stderr
	if out, err := prep.Output(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("posit-sdk-suite.sh --prepare: %v", err)
		}
		t.Skipf("posit-sdk's suite unavailable (posit-sdk-suite.sh --prepare: %v)", err)
	} else {
		t.Logf("suite source: %s", strings.TrimSpace(string(out)))
	}

	want := docsSuiteTable(t, filepath.Join(root, "docs", "connect-sdk-suite.md"))
	results := filepath.Join(t.TempDir(), "results.tsv")
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "ATRIUM_BIN="+atriumBinary(t), "SUITE_RESULTS="+results)
	out, err := cmd.CombinedOutput()
	t.Logf("posit-sdk-suite.sh:\n%s", out)
	if err != nil {
		t.Fatalf("posit-sdk-suite.sh: %v", err)
	}
	got := map[string]string{}
	f, err := os.Open(results)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), "\t", 3)
		if len(fields) < 2 {
			t.Fatalf("results line %q", sc.Text())
		}
		got[fields[0]] = fields[1]
	}
	if len(got) == 0 {
		t.Fatal("the suite reported no tests")
	}
	for id, outcome := range want {
		switch g, ok := got[id]; {
		case !ok:
			t.Errorf("%s: listed in docs/connect-sdk-suite.md but did not run", id)
		case outcome == "pass" && g != "pass":
			t.Errorf("%s: %s, but docs/connect-sdk-suite.md lists it as passing", id, g)
		case g != outcome:
			t.Errorf("%s: %s, but docs/connect-sdk-suite.md says %s; update the table", id, g, outcome)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("%s: %s, and docs/connect-sdk-suite.md does not list it", id, g)
		}
	}
}

// suiteRow is a row of the results table: | `file.py::Class::test` | result | …
var suiteRow = regexp.MustCompile("^\\|\\s*`([^`]+\\.py::[^`]+)`\\s*\\|\\s*(pass|fail|error|skip)\\s*\\|")

// docsSuiteTable reads test id → result from the docs' table.
func docsSuiteTable(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := suiteRow.FindStringSubmatch(line); m != nil {
			if _, dup := rows[m[1]]; dup {
				t.Fatalf("%s lists %s twice", path, m[1])
			}
			rows[m[1]] = m[2]
		}
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no results table", path)
	}
	return rows
}
