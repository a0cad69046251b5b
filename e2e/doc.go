// Package e2e holds the suite's end-to-end tests: they build the real
// atrium binary, run it on free ports and a temporary data dir, and talk to
// it as users and their clients do. It also holds the repository-wide checks
// (import direction, package docs, workspace hygiene).
package e2e
