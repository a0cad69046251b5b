// Package bundle reads what a publisher uploads to Connect: the gzip'd tar
// that rsconnect-python, posit-sdk and Posit Publisher send unmodified, and
// the manifest.json inside it that says what the content is (its app mode),
// how to start it (its entrypoint) and what it needs (a requirements file, an
// R package list, a Quarto version).
//
// It is pure code: no HTTP, no database. ParseManifest validates a manifest
// the way Connect must before it accepts a bundle, so that a bad bundle is
// refused at upload with a message the publisher can act on rather than
// failing later in a build log. Extract unpacks an upload into a fresh
// directory and is written for hostile input: absolute paths, ".."
// components, links, devices, duplicates and archives over Limits are
// refused, every write goes through an os.Root so a name cannot escape even
// if a check were missed, and a rejected upload leaves nothing behind.
// Every rejection is an *InvalidError whose message can be shown as is.
package bundle
