package pypi

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/atrium-suite/atrium/shared/pyname"
)

// MaxNameLen bounds project names; PyPI has no formal limit but nothing real
// comes close, and names end up in paths and database keys.
const MaxNameLen = 200

var nameRE = regexp.MustCompile(`^(?i:[a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$`)

// ValidName reports whether name is a valid project name per the core
// metadata spec (ASCII letters and digits, with '.', '_' and '-' inside).
func ValidName(name string) bool {
	return len(name) <= MaxNameLen && nameRE.MatchString(name)
}

// WheelName is a parsed wheel filename
// {dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl. Name and
// Version are as written (escaped: '-' in either became '_').
type WheelName struct {
	Name, Version, Build, Python, ABI, Platform string
}

var (
	wheelNameRE  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?$`)
	wheelBuildRE = regexp.MustCompile(`^[0-9][A-Za-z0-9_.]*$`)
	wheelTagRE   = regexp.MustCompile(`^[A-Za-z0-9_.]+$`)
)

// ParseWheelFilename splits a wheel filename per the binary distribution
// format and checks each part's syntax; the version must be PEP 440.
func ParseWheelFilename(filename string) (WheelName, error) {
	stem, ok := strings.CutSuffix(filename, ".whl")
	if !ok {
		return WheelName{}, invalidf("wheel filename %q must end in .whl", filename)
	}
	if len(filename) > 2*MaxNameLen+maxVersionLen {
		return WheelName{}, invalidf("wheel filename is too long")
	}
	parts := strings.Split(stem, "-")
	var w WheelName
	switch len(parts) {
	case 5:
		w = WheelName{parts[0], parts[1], "", parts[2], parts[3], parts[4]}
	case 6:
		w = WheelName{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]}
	default:
		return WheelName{}, invalidf("wheel filename %q is not name-version(-build)-python-abi-platform.whl", filename)
	}
	if !wheelNameRE.MatchString(w.Name) || len(w.Name) > MaxNameLen {
		return WheelName{}, invalidf("wheel filename %q has an invalid project name %q", filename, w.Name)
	}
	if _, err := ParseVersion(w.Version); err != nil {
		return WheelName{}, invalidf("wheel filename %q has an invalid version %q", filename, w.Version)
	}
	if len(parts) == 6 && !wheelBuildRE.MatchString(w.Build) {
		return WheelName{}, invalidf("wheel filename %q has an invalid build tag %q (it must start with a digit)", filename, w.Build)
	}
	for _, t := range []string{w.Python, w.ABI, w.Platform} {
		if !wheelTagRE.MatchString(t) {
			return WheelName{}, invalidf("wheel filename %q has an invalid tag %q", filename, t)
		}
	}
	return w, nil
}

// SdistName is a parsed source distribution filename {name}-{version}.{ext}.
type SdistName struct {
	Name, Version string
	Ext           string // ".tar.gz" or ".zip"
}

// sdistExts are the source archive formats accepted; PEP 625 allows only
// .tar.gz, but older uploads and mirrors carry .zip.
var sdistExts = []string{".tar.gz", ".zip"}

// ParseSdistFilename splits an sdist filename at its last '-'. Older tools
// kept '-' in the name ("foo-bar-1.0.tar.gz"), which this handles; a version
// containing '-' (a non-normalized "1.0-1") cannot be told apart from the
// filename alone, so Inspect matches the filename against the metadata
// instead of relying on this split.
func ParseSdistFilename(filename string) (SdistName, error) {
	stem, ext, ok := cutSdistExt(filename)
	if !ok {
		return SdistName{}, invalidf("source distribution %q must end in .tar.gz or .zip", filename)
	}
	i := strings.LastIndexByte(stem, '-')
	if i <= 0 || i == len(stem)-1 {
		return SdistName{}, invalidf("source distribution %q is not name-version%s", filename, ext)
	}
	s := SdistName{Name: stem[:i], Version: stem[i+1:], Ext: ext}
	if !ValidName(s.Name) {
		return SdistName{}, invalidf("source distribution %q has an invalid project name %q", filename, s.Name)
	}
	if _, err := ParseVersion(s.Version); err != nil {
		return SdistName{}, invalidf("source distribution %q has an invalid version %q", filename, s.Version)
	}
	return s, nil
}

func cutSdistExt(filename string) (stem, ext string, ok bool) {
	for _, e := range sdistExts {
		if s, ok := strings.CutSuffix(filename, e); ok {
			return s, e, true
		}
	}
	return "", "", false
}

// versionMatches says whether a version written in a filename or directory
// name is the metadata's version: equal ignoring case, equal to the
// wheel-escaped form ('-' → '_'), or the same PEP 440 normalized string. It
// does not equate "1.0" with "1.0.0": they are different releases' files.
func versionMatches(inName, meta string) bool {
	if strings.EqualFold(inName, meta) || strings.EqualFold(inName, strings.ReplaceAll(meta, "-", "_")) {
		return true
	}
	a, err1 := ParseVersion(inName)
	b, err2 := ParseVersion(meta)
	return err1 == nil && err2 == nil && a.String() == b.String()
}

// splitNameVersion finds the '-' in "name-version" at which the left side
// normalizes to name and the right side matches version. It tries every
// '-', since both halves may contain one.
func splitNameVersion(s, name, version string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && pyname.Normalize(s[:i]) == pyname.Normalize(name) && versionMatches(s[i+1:], version) {
			return true
		}
	}
	return false
}

// describeNameVersion is for error messages: what a "name-version" string
// appears to say, split at its last '-'.
func describeNameVersion(s string) string {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("name %q version %q", s[:i], s[i+1:])
}
