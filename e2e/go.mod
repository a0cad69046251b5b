module github.com/atrium-suite/atrium/e2e

go 1.26.0

require (
	github.com/atrium-suite/atrium/shared v0.0.0
	github.com/atrium-suite/atrium/suite v0.0.0
	github.com/atrium-suite/atrium/connect v0.0.0
	github.com/atrium-suite/atrium/workbench v0.0.0
	github.com/atrium-suite/atrium/packagemanager v0.0.0
	github.com/atrium-suite/atrium/cmd v0.0.0
)

replace (
	github.com/atrium-suite/atrium/shared => ../shared
	github.com/atrium-suite/atrium/suite => ../suite
	github.com/atrium-suite/atrium/connect => ../connect
	github.com/atrium-suite/atrium/workbench => ../workbench
	github.com/atrium-suite/atrium/packagemanager => ../packagemanager
	github.com/atrium-suite/atrium/cmd => ../cmd
)
