package db

// VersionReuse is versionReuse, for tests of the reuse window.
const VersionReuse = versionReuse

// SetClockForTest makes DataVersion read its clock from f until the
// returned function restores the real one.
func SetClockForTest(f func() int64) (restore func()) {
	old := now
	now = f
	return func() { now = old }
}
