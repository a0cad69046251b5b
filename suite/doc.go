// Package suite places and runs the Atrium products.
//
// Today it runs them on one machine: Up starts Connect, Workbench and
// Package Manager in one process, and Serve starts one of them alone (what
// an agent or a Kubernetes pod runs). The Raft-replicated controller and
// its topologies (separate servers, HA, Kubernetes) build on these.
package suite
