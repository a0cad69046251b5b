package pypi

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// ordered is a list in strictly increasing PEP 440 order, checked pairwise
// and as a shuffled sort.
var ordered = []string{
	"0.9",
	"1.0.dev1",
	"1.0a1.dev1",
	"1.0a1",
	"1.0a2.dev1",
	"1.0a2",
	"1.0a12",
	"1.0b2",
	"1.0rc1",
	"1.0",
	"1.0+abc",
	"1.0+abc.5",
	"1.0+5",
	"1.0+5.1",
	"1.0.post1.dev1",
	"1.0.post1",
	"1.0.post2",
	"1.0.1",
	"1.1.dev0",
	"1.1",
	"1.10",
	"2.0",
	"99999999999999999999999.0",
	"1!0.1",
	"2!0.1",
}

func TestCompareVersionsOrder(t *testing.T) {
	for i := range ordered {
		for j := range ordered {
			want := cmpInt(i, j)
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	shuffled := slices.Clone(ordered)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := SortVersions(shuffled); !slices.Equal(got, ordered) {
		t.Errorf("SortVersions = %q", got)
	}
}

func TestCompareVersionsEqual(t *testing.T) {
	for _, pair := range [][2]string{
		{"1.0", "1.0.0"},
		{"1.0a1", "1.0-alpha.1"},
		{"1.0rc1", "1.0c1"},
		{"1.0rc1", "1.0-pre1"},
		{"1.0.post1", "1.0-1"},
		{"1.0.post1", "1.0-r1"},
		{"1.0.dev0", "1.0dev"},
		{"1.0+ubuntu.1", "1.0+Ubuntu-1"},
		{"0!1.0", "v1.0"},
		{"01.002", "1.2"},
	} {
		a, err1 := ParseVersion(pair[0])
		b, err2 := ParseVersion(pair[1])
		if err1 != nil || err2 != nil || a.Compare(b) != 0 {
			t.Errorf("%q vs %q: %v %v compare %d, want equal", pair[0], pair[1], err1, err2, a.Compare(b))
		}
	}
}

func TestParseVersionNormalized(t *testing.T) {
	tests := map[string]string{
		"1.0":               "1.0",
		"v1.0":              "1.0",
		"1.0-ALPHA.1":       "1.0a1",
		"1.0.beta":          "1.0b0",
		"1.0c2":             "1.0rc2",
		"1.0-1":             "1.0.post1",
		"1.0_post_2":        "1.0.post2",
		"1.0rev":            "1.0.post0",
		"1.0.DEV-3":         "1.0.dev3",
		"1!2.0":             "1!2.0",
		"0!2.0":             "2.0",
		"1.0+Local_Ver-01":  "1.0+local.ver.1",
		" 1.0 ":             "1.0",
		"2.0rc1.post3.dev4": "2.0rc1.post3.dev4",
	}
	for in, want := range tests {
		v, err := ParseVersion(in)
		if err != nil || v.String() != want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, v.String(), err, want)
		}
	}
	for _, bad := range []string{"", "abc", "1.0.", "1..0", "1.0+", "1.0+a..b", "1.0-", "1.0a1a2", "1.0 beta", "1!", "!1.0"} {
		if v, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) = %q, want error", bad, v)
		}
	}
}

func TestCompareVersionsInvalid(t *testing.T) {
	// Invalid versions sort first, among themselves by bytes.
	got := SortVersions([]string{"1.0", "banana", "0.1", "apple", "1.0"})
	want := []string{"apple", "banana", "0.1", "1.0"}
	if !slices.Equal(got, want) {
		t.Errorf("SortVersions = %q, want %q", got, want)
	}
	if SortVersions(nil) == nil {
		t.Error("SortVersions(nil) = nil, want empty slice")
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, v := range ordered {
		f.Add(v, "1.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err := ParseVersion(a)
		if err == nil {
			// The normalized form parses to itself.
			again, err := ParseVersion(va.String())
			if err != nil || again.String() != va.String() || again.Compare(va) != 0 {
				t.Fatalf("%q → %q → %q, %v", a, va.String(), again.String(), err)
			}
		}
		// Antisymmetry keeps sorting well defined.
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("CompareVersions(%q, %q) not antisymmetric", a, b)
		}
	})
}
