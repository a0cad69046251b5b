module github.com/atrium-suite/atrium/packagemanager

go 1.26.0

require (
	github.com/atrium-suite/atrium/shared v0.0.0
)

replace (
	github.com/atrium-suite/atrium/shared => ../shared
)
