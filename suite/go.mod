module github.com/atrium-suite/atrium/suite

go 1.26.0

require (
	github.com/atrium-suite/atrium/shared v0.0.0
	github.com/atrium-suite/atrium/connect v0.0.0
	github.com/atrium-suite/atrium/workbench v0.0.0
	github.com/atrium-suite/atrium/packagemanager v0.0.0
)

replace (
	github.com/atrium-suite/atrium/shared => ../shared
	github.com/atrium-suite/atrium/connect => ../connect
	github.com/atrium-suite/atrium/workbench => ../workbench
	github.com/atrium-suite/atrium/packagemanager => ../packagemanager
)
