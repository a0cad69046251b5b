package mirror

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Pip asks the host's pip which index it uses. The zero value runs
// "python3" with the process environment; tests inject Getenv and Run.
type Pip struct {
	// Python is the interpreter whose pip is asked; default "python3".
	Python string
	// Getenv defaults to os.Getenv.
	Getenv func(key string) string
	// Run runs a command and returns its standard output; default runs it
	// with os/exec, inheriting the environment (pip reads PIP_CONFIG_FILE
	// and friends from there), bounded by a 30 s timeout.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// DefaultIndexURL returns the index URL the host's pip would install from,
// normalized to end in "/". See Pip.IndexURL.
func DefaultIndexURL(ctx context.Context) (string, error) {
	return Pip{}.IndexURL(ctx)
}

// builtinIndexScript prints pip's built-in default index. Asking pip keeps
// the default in one place (pip's) instead of copying it into Atrium.
const builtinIndexScript = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"

// IndexURL returns the index URL pip would use, in pip's own precedence:
//
//  1. $PIP_INDEX_URL;
//  2. index-url from pip's configuration files, the [install] section
//     before [global] (pip lets command sections override global);
//  3. pip's built-in default.
//
// The configuration is read with "pip config list" rather than "pip config
// get": both show the same merged view, but "get" misses keys in some pip
// releases (23.2), and "list" answers for both sections in one run.
func (p Pip) IndexURL(ctx context.Context) (string, error) {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	run := p.Run
	if run == nil {
		run = runCommand
	}
	python := p.Python
	if python == "" {
		python = "python3"
	}

	if v := strings.TrimSpace(getenv("PIP_INDEX_URL")); v != "" {
		return normalizedIndex("PIP_INDEX_URL", v)
	}
	var listErr error
	out, err := run(ctx, python, "-m", "pip", "config", "list")
	if err == nil {
		cfg := parseConfigList(out)
		for _, key := range []string{"install.index-url", "global.index-url"} {
			if v := cfg[key]; v != "" {
				return normalizedIndex("pip config "+key, v)
			}
		}
	} else {
		listErr = err
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("mirror: ask pip for its index: %w", ctx.Err())
	}
	out, err = run(ctx, python, "-c", builtinIndexScript)
	if err != nil {
		return "", fmt.Errorf("mirror: ask pip for its default index: %w", errors.Join(err, listErr))
	}
	v := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(v, '\n'); i >= 0 { // last line, past any warnings
		v = strings.TrimSpace(v[i+1:])
	}
	return normalizedIndex("pip's default index", v)
}

func normalizedIndex(source, v string) (string, error) {
	u, err := parseIndexURL(v)
	if err != nil {
		return "", fmt.Errorf("mirror: %s: %w", source, err)
	}
	return u, nil
}

// parseConfigList parses "pip config list" output: lines of
// section.key=<Python repr of the value>.
func parseConfigList(out []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if s, ok := unquotePyRepr(strings.TrimSpace(v)); ok {
			m[strings.TrimSpace(k)] = s
		}
	}
	return m
}

// unquotePyRepr decodes the repr() of a Python str as far as URLs need:
// quotes and backslash escapes of quotes and backslashes. Anything else
// (e.g. \x escapes of control characters) is rejected rather than guessed.
func unquotePyRepr(s string) (string, bool) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", false
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '\\', '\'', '"':
			b.WriteByte(s[i])
		default:
			return "", false
		}
	}
	return b.String(), true
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
