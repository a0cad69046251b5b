// Package pypi is the Python side of Package Manager's wire protocol: it
// names and orders distributions (PEP 503 names, PEP 440 versions, wheel and
// sdist filenames), inspects uploaded archives and their core metadata before
// anything is stored, renders the Simple Repository API (PEP 503 HTML and
// PEP 691 JSON at API version 1.1, with the PEP 592 yank, PEP 658/714
// metadata and PEP 700 size/upload-time fields) and reads the legacy upload
// form that twine sends.
//
// It holds no state and does no I/O beyond the readers and writers it is
// given: the server decides where bytes live and which files a page lists.
// Everything that comes from outside (filenames, archives, metadata, Accept
// headers, upload forms) is treated as hostile: parsers are bounded and
// fuzzed, and a rejection is an *InvalidError whose message can be shown to
// the uploader as is.
package pypi
