package auth

// Unexported parsers of outside input, for the tests and fuzz tests in
// package auth_test.
var (
	SafeNext           = safeNext
	ParseAuthorization = parseAuthorization
)
