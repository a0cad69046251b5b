package cran

import "testing"

// The expectations were checked against R 4.2's package_version.
func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0.1", -1},
		{"1.0.0", "1.0", 0},
		{"1.2", "1.10", -1},
		{"2.0-1", "2.0.0", 1},
		{"1.0", "1.0-0", 0},
		{"1-2", "1.2", 0},
		{"01.2", "1.2", 0},
		{"1.0.0.0", "1.0", 0},
		{"10.0", "9.99", 1},
		{"1.99999999999999999999999", "1.99999999999999999999998", 1},
		{"1.0", "1.0a", -1}, // invalid versions still order deterministically
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}
