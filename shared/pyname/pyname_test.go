package pyname

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Django":            "django",
		"zope.interface":    "zope-interface",
		"Foo.Bar__baz--Qux": "foo-bar-baz-qux",
		"a-_.-b":            "a-b",
		"requests":          "requests",
		"":                  "",
		"trailing_":         "trailing-",
		"typing_extensions": "typing-extensions",
		"ruamel.yaml.clib":  "ruamel-yaml-clib",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
