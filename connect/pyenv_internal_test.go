package connect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/shared/platform"
)

func TestPickPython(t *testing.T) {
	all := []interpreter{{"/a/python3", "3.11.2"}, {"/b/python3.12", "3.12.1"}, {"/c/python3.12", "3.12.4"}}
	tests := []struct {
		want, got string
	}{
		{"3.12.0", "3.12.4"}, // the newest patch of the same minor
		{"3.11.9", "3.11.2"},
		{"3.9.1", "3.11.2"}, // none of that minor: the first found
		{"", "3.11.2"},
		{"garbage", "3.11.2"},
	}
	for _, tt := range tests {
		if got := pickPython(all, tt.want).version; got != tt.got {
			t.Errorf("pickPython(%q) = %s, want %s", tt.want, got, tt.got)
		}
	}
}

// TestPythonsOnPath: every python3 and python3.N on the PATH is found once
// per version, in PATH order; other python3* names are not interpreters.
func TestPythonsOnPath(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	fake := func(dir, name, version string) {
		script := "#!/bin/sh\necho " + version + "\necho " + filepath.Join(dir, name) + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake(dir1, "python3", "3.11.2")
	fake(dir1, "python3.11", "3.11.2") // the same interpreter again
	fake(dir1, "python3-config", "9.9.9")
	fake(dir2, "python3.12", "3.12.4")
	t.Setenv("PATH", dir1+string(os.PathListSeparator)+dir2)
	s := &Server{Base: &platform.Base{}}
	got, err := s.pythons(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, p := range got {
		vs = append(vs, p.version+"@"+filepath.Base(p.path))
	}
	if strings.Join(vs, " ") != "3.11.2@python3 3.12.4@python3.12" {
		t.Fatalf("pythons = %v", vs)
	}
}
