// Package cran is the CRAN-repository format, free of storage and HTTP:
// parsing DCF files and DESCRIPTION, inspecting uploaded source tarballs,
// comparing versions the way R's package_version does, and writing the
// src/contrib index files (PACKAGES, PACKAGES.gz, PACKAGES.rds) that R's
// available.packages() and install.packages() read.
//
// The server keeps one Entry per package version (see Package.Entry), puts
// the newest version of each package in the index (Latest) and serves the
// older tarballs under src/contrib/Archive/{pkg}/. R itself never reads
// Archive through the index, so nothing else is needed for old versions.
package cran

import "github.com/atrium-suite/atrium/shared/inputerr"

// InvalidError reports content that is not acceptable: a malformed DCF file,
// a bad DESCRIPTION or a refused tarball. Msg is written for the person who
// uploaded the file, so servers can show it as is (HTTP 400/422); anything
// else returned by this package is an I/O or internal error.
type InvalidError = inputerr.Error

var invalidf = inputerr.Errorf
