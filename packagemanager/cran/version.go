package cran

import "strings"

// CompareVersions compares two package versions the way R's
// package_version does and returns -1, 0 or +1. Versions are split on '.'
// and '-' and compared component by component as integers of any size, so
// "1.10" > "1.9" and "0.9-1" == "0.9.1". A missing component counts as 0,
// as in R ≥ 4 ("1.0" == "1.0.0"). Components that are not numbers (invalid
// versions, which R would refuse) compare bytewise after the numeric ones so
// the order stays total and deterministic.
func CompareVersions(a, b string) int {
	as := splitVersion(a)
	bs := splitVersion(b)
	for i := 0; i < max(len(as), len(bs)); i++ {
		x, y := "0", "0"
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := compareComponent(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func splitVersion(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' })
}

func compareComponent(x, y string) int {
	xn, yn := isDigits(x), isDigits(y)
	switch {
	case xn && yn:
		x, y = trimZeros(x), trimZeros(y)
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	case xn:
		return -1
	case yn:
		return 1
	}
	return strings.Compare(x, y)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}
