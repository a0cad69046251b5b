package pypi

import (
	"fmt"
	"regexp"
	"strings"
)

// versionRE is PEP 440's canonical regular expression (as in the packaging
// library), anchored; it accepts every spelling PEP 440 normalizes, such as
// "1.0-alpha.1", "v2", "1.0_post2" and "1.0-1".
var versionRE = regexp.MustCompile(`(?i)^v?` +
	`(?:([0-9]+)!)?` + // epoch
	`([0-9]+(?:\.[0-9]+)*)` + // release
	`(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?` + // pre
	`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` + // post
	`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` + // dev
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`) // local

// maxVersionLen bounds what ParseVersion looks at; real versions are short
// and this keeps sorting a hostile list cheap.
const maxVersionLen = 256

// Version is a parsed PEP 440 version. Numbers are kept as decimal strings
// without leading zeros so that no version, however long, overflows.
type Version struct {
	Epoch   string   // "0" when absent
	Release []string // at least one component
	Pre     string   // "", "a", "b" or "rc"
	PreN    string
	Post    string // "" when absent, else the number
	Dev     string // "" when absent, else the number
	Local   []string
}

// ParseVersion parses a PEP 440 version in any spelling the PEP allows.
// String returns its normalized form.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxVersionLen {
		return Version{}, fmt.Errorf("version %.20q…: too long", s)
	}
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("%q is not a PEP 440 version", s)
	}
	v := Version{Epoch: "0"}
	if m[1] != "" {
		v.Epoch = trimNum(m[1])
	}
	for _, c := range strings.Split(m[2], ".") {
		v.Release = append(v.Release, trimNum(c))
	}
	if m[3] != "" {
		switch strings.ToLower(m[3]) {
		case "a", "alpha":
			v.Pre = "a"
		case "b", "beta":
			v.Pre = "b"
		default: // c, rc, pre, preview
			v.Pre = "rc"
		}
		v.PreN = trimNum(m[4])
	}
	switch {
	case m[5] != "":
		v.Post = trimNum(m[5])
	case m[6] != "":
		v.Post = trimNum(m[7])
	}
	if m[8] != "" {
		v.Dev = trimNum(m[9])
	}
	if m[10] != "" {
		v.Local = strings.FieldsFunc(strings.ToLower(m[10]), func(r rune) bool {
			return r == '-' || r == '_' || r == '.'
		})
		for i, p := range v.Local {
			if isDigits(p) {
				v.Local[i] = trimNum(p)
			}
		}
	}
	return v, nil
}

// String is the normalized form, e.g. "1!2.0rc1.post3.dev0+ubuntu.1".
func (v Version) String() string {
	var b strings.Builder
	if v.Epoch != "0" && v.Epoch != "" {
		b.WriteString(v.Epoch + "!")
	}
	b.WriteString(strings.Join(v.Release, "."))
	if v.Pre != "" {
		b.WriteString(v.Pre + v.PreN)
	}
	if v.Post != "" {
		b.WriteString(".post" + v.Post)
	}
	if v.Dev != "" {
		b.WriteString(".dev" + v.Dev)
	}
	if len(v.Local) > 0 {
		b.WriteString("+" + strings.Join(v.Local, "."))
	}
	return b.String()
}

// IsPrerelease reports a pre- or dev-release, which installers skip unless
// asked.
func (v Version) IsPrerelease() bool { return v.Pre != "" || v.Dev != "" }

// Compare orders v and w as PEP 440 does: -1, 0 or +1.
func (v Version) Compare(w Version) int {
	if c := cmpNum(v.Epoch, w.Epoch); c != 0 {
		return c
	}
	// Trailing zeros do not count: 1.0 == 1.0.0.
	a, b := trimZeros(v.Release), trimZeros(w.Release)
	for i := 0; i < len(a) || i < len(b); i++ {
		x, y := "0", "0"
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if c := cmpNum(x, y); c != 0 {
			return c
		}
	}
	if c := cmpPre(v, w); c != 0 {
		return c
	}
	// No post release sorts before any post release.
	if c := cmpOptNum(v.Post, w.Post, -1); c != 0 {
		return c
	}
	// No dev release sorts after any dev release.
	if c := cmpOptNum(v.Dev, w.Dev, +1); c != 0 {
		return c
	}
	return cmpLocal(v.Local, w.Local)
}

// preRank maps the pre-release phase to its order. A bare dev release
// (1.0.dev1) sorts before every pre-release of the same release; a final
// release after all of them.
func preRank(v Version) int {
	switch {
	case v.Pre == "" && v.Post == "" && v.Dev != "":
		return 0
	case v.Pre == "a":
		return 1
	case v.Pre == "b":
		return 2
	case v.Pre == "rc":
		return 3
	}
	return 4
}

func cmpPre(v, w Version) int {
	rv, rw := preRank(v), preRank(w)
	if rv != rw {
		return cmpInt(rv, rw)
	}
	if rv >= 1 && rv <= 3 {
		return cmpNum(v.PreN, w.PreN)
	}
	return 0
}

// cmpOptNum compares optional numbers; absent sorts as absent (-1 before,
// +1 after every present number).
func cmpOptNum(a, b string, absent int) int {
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return absent
	case b == "":
		return -absent
	}
	return cmpNum(a, b)
}

// cmpLocal: no local < any local; segment by segment numbers beat letters,
// numbers compare numerically, letters lexically; a longer label wins ties.
func cmpLocal(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		na, nb := isDigits(a[i]), isDigits(b[i])
		switch {
		case na && nb:
			if c := cmpNum(a[i], b[i]); c != 0 {
				return c
			}
		case na:
			return 1
		case nb:
			return -1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(len(a), len(b))
}

// CompareVersions orders two version strings by PEP 440. Strings that are
// not PEP 440 versions (legacy uploads, mirrored junk) sort before all valid
// ones and among themselves by byte order, so sorting never fails.
func CompareVersions(a, b string) int {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	switch {
	case ea != nil && eb != nil:
		return strings.Compare(a, b)
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	if c := va.Compare(vb); c != 0 {
		return c
	}
	// Equal versions spelled differently ("1.0" and "1.0.0") still get a
	// stable order.
	return strings.Compare(a, b)
}

// NormalizeVersion returns the PEP 440 normalized spelling of s, or s
// unchanged when it is not a valid version.
func NormalizeVersion(s string) string {
	v, err := ParseVersion(s)
	if err != nil {
		return s
	}
	return v.String()
}

func trimNum(s string) string {
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

func trimZeros(r []string) []string {
	n := len(r)
	for n > 0 && r[n-1] == "0" {
		n--
	}
	return r[:n]
}

// cmpNum compares decimal strings without leading zeros.
func cmpNum(a, b string) int {
	if a == "" {
		a = "0"
	}
	if b == "" {
		b = "0"
	}
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
