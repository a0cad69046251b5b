package accounts

// NewPassword returns a random password for a new account, of the same
// strength as the first admin's, for tools that create users without
// asking for one.
func NewPassword() string { return randomBase62(adminPasswordLen) }
