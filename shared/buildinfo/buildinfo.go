// Package buildinfo says which build of Atrium is running.
package buildinfo

import "runtime/debug"

// Version is set at link time by the Makefile
// (-X github.com/atrium-suite/atrium/shared/buildinfo.Version=…).
var Version = ""

// String returns the release version, or the VCS revision a development
// build was made from, or "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
