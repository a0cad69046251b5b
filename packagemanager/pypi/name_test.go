package pypi

import (
	"errors"
	"testing"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "demo-pkg": true, "Zope.Thing": true, "x_1": true, "9lives": true,
		"": false, "-a": false, "a-": false, "a b": false, "a/b": false, "ä": false, ".a": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseWheelFilename(t *testing.T) {
	tests := []struct {
		in   string
		want WheelName
		err  bool
	}{
		{in: "demo_pkg-1.0.0-py3-none-any.whl", want: WheelName{"demo_pkg", "1.0.0", "", "py3", "none", "any"}},
		{in: "numpy-2.1.0-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
			want: WheelName{"numpy", "2.1.0", "1", "cp312", "cp312", "manylinux_2_17_x86_64.manylinux2014_x86_64"}},
		{in: "zope.interface-5.0-py2.py3-none-any.whl", want: WheelName{"zope.interface", "5.0", "", "py2.py3", "none", "any"}},
		{in: "torch-2.0.0+cu118-cp311-cp311-linux_x86_64.whl", want: WheelName{"torch", "2.0.0+cu118", "", "cp311", "cp311", "linux_x86_64"}},
		{in: "demo-1.0-py3-none-any.tar.gz", err: true},
		{in: "demo-1.0-py3-any.whl", err: true},
		{in: "demo-1.0-x-y-py3-none-any.whl", err: true},
		{in: "demo-notaversion-py3-none-any.whl", err: true},
		{in: "demo-1.0-build-py3-none-any.whl", err: true}, // build tag must start with a digit
		{in: "_demo-1.0-py3-none-any.whl", err: true},
		{in: "demo-1.0-py3-none-any/x.whl", err: true},
		{in: "demo-1.0-py3--any.whl", err: true},
	}
	for _, tt := range tests {
		got, err := ParseWheelFilename(tt.in)
		if tt.err {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Errorf("ParseWheelFilename(%q) = %+v, %v; want *InvalidError", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseWheelFilename(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSdistFilename(t *testing.T) {
	tests := []struct {
		in   string
		want SdistName
		err  bool
	}{
		{in: "demo-pkg-1.0.0.tar.gz", want: SdistName{"demo-pkg", "1.0.0", ".tar.gz"}},
		{in: "demo_pkg-1.0.0.tar.gz", want: SdistName{"demo_pkg", "1.0.0", ".tar.gz"}},
		{in: "Zope.Thing-2.0rc1.zip", want: SdistName{"Zope.Thing", "2.0rc1", ".zip"}},
		{in: "demo-1.0.tar.bz2", err: true},
		{in: "demo.tar.gz", err: true},
		{in: "-1.0.tar.gz", err: true},
		{in: "demo-.tar.gz", err: true},
		{in: "demo-x.y.tar.gz", err: true},
	}
	for _, tt := range tests {
		got, err := ParseSdistFilename(tt.in)
		if (err != nil) != tt.err || !tt.err && got != tt.want {
			t.Errorf("ParseSdistFilename(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSplitNameVersion(t *testing.T) {
	tests := []struct {
		s, name, version string
		want             bool
	}{
		{"demo-pkg-1.0.0", "demo-pkg", "1.0.0", true},
		{"demo_pkg-1.0.0", "demo-pkg", "1.0.0", true},
		{"Zope.Thing-2.0rc1", "zope-thing", "2.0rc1", true},
		{"demo-1.0-1", "demo", "1.0-1", true},      // '-' in the version
		{"demo-1.0_1", "demo", "1.0-1", true},      // wheel-escaped
		{"demo-1.0.post1", "demo", "1.0-1", true},  // same normalized version
		{"demo-1.0-alpha1", "demo", "1.0a1", true}, // spelled out
		{"demo-1.0.0", "demo", "1.0", false},       // a different file name
		{"demo-1.0", "demo-pkg", "1.0", false},     // name
		{"demo-pkg-1.0", "demo", "1.0", false},     // "pkg-1.0" is no version
		{"demo", "demo", "", false},
	}
	for _, tt := range tests {
		if got := splitNameVersion(tt.s, tt.name, tt.version); got != tt.want {
			t.Errorf("splitNameVersion(%q, %q, %q) = %v, want %v", tt.s, tt.name, tt.version, got, tt.want)
		}
	}
}

func FuzzParseWheelFilename(f *testing.F) {
	for _, s := range []string{
		"demo_pkg-1.0.0-py3-none-any.whl",
		"numpy-2.1.0-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
		"a-1-b-c-d.whl", "--------.whl", ".whl",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWheelFilename(s)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("error is not *InvalidError: %v", err)
			}
			return
		}
		// Whatever parses must round-trip to the same filename.
		parts := []string{w.Name, w.Version}
		if w.Build != "" {
			parts = append(parts, w.Build)
		}
		parts = append(parts, w.Python, w.ABI, w.Platform)
		got := ""
		for i, p := range parts {
			if i > 0 {
				got += "-"
			}
			got += p
		}
		if got+".whl" != s {
			t.Fatalf("round trip %q → %+v → %q", s, w, got)
		}
		if !ValidName(w.Name) {
			t.Fatalf("accepted invalid name %q", w.Name)
		}
	})
}
