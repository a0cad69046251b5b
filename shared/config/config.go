// Package config loads the suite's one configuration file, atrium.toml.
//
// Every product reads the same file: a [shared] section for what the suite
// has in common (data dir, database, logging) and a section per product for
// what is its own. Values are resolved in one order — built-in defaults, then
// the file, then ATRIUM_<SECTION>_<KEY> environment variables, then command
// line flags applied by the caller — and validated last, so a bad value from
// any source fails start-up with the key's dotted name in the message.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Default ports are Posit's, so an admin's habits and firewall rules carry over.
const (
	DefaultConnectPort        = 3939
	DefaultWorkbenchPort      = 8787
	DefaultPackageManagerPort = 4242
)

// Product names, as used in section names, URLs, schema names and data subdirs.
const (
	Connect        = "connect"
	Workbench      = "workbench"
	PackageManager = "packagemanager"
)

// Products lists the product names in the order the suite starts them.
var Products = []string{PackageManager, Connect, Workbench}

// Config is the whole of atrium.toml.
type Config struct {
	Shared         Shared `toml:"shared"`
	Connect        Server `toml:"connect"`
	Workbench      Server `toml:"workbench"`
	PackageManager Server `toml:"packagemanager"`
}

// Shared holds what every product has in common.
type Shared struct {
	// DataDir holds each product's files and, with SQLite, its database.
	DataDir string `toml:"data_dir"`
	// DatabaseURL selects PostgreSQL when set (postgres://…); empty means
	// one SQLite file per product under DataDir.
	DatabaseURL string `toml:"database_url"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `toml:"log_format"`
}

// Server holds the HTTP settings every product server has.
type Server struct {
	// Listen is host:port; port 0 picks a free port (tests use it).
	Listen string `toml:"listen"`
	// PublicURL is how browsers and clients reach the product; empty means
	// derive it from Listen.
	PublicURL string `toml:"public_url"`
	// MaxBodyBytes caps every request body.
	MaxBodyBytes ByteSize `toml:"max_body_bytes"`
	// ReadHeaderTimeout bounds how long a client may take to send headers.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout Duration `toml:"idle_timeout"`
	// ShutdownTimeout bounds how long shutdown waits for in-flight requests.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
}

// Default returns the built-in defaults: everything on one machine, SQLite,
// ./data.
func Default() Config {
	srv := func(port int, body ByteSize) Server {
		return Server{
			Listen:            fmt.Sprintf(":%d", port),
			MaxBodyBytes:      body,
			ReadHeaderTimeout: Duration(10e9),
			IdleTimeout:       Duration(120e9),
			ShutdownTimeout:   Duration(30e9),
		}
	}
	return Config{
		Shared: Shared{
			DataDir:   "./data",
			LogLevel:  "info",
			LogFormat: "text",
		},
		// Bundles and package uploads are large; Workbench proxies IDE
		// uploads. 1 GiB matches what data-science content needs without
		// letting a single request fill the disk.
		Connect:        srv(DefaultConnectPort, 1<<30),
		Workbench:      srv(DefaultWorkbenchPort, 1<<30),
		PackageManager: srv(DefaultPackageManagerPort, 1<<30),
	}
}

// Server returns the settings of the named product.
func (c *Config) Server(product string) (*Server, error) {
	switch product {
	case Connect:
		return &c.Connect, nil
	case Workbench:
		return &c.Workbench, nil
	case PackageManager:
		return &c.PackageManager, nil
	}
	return nil, fmt.Errorf("unknown product %q (want one of %s)", product, strings.Join(Products, ", "))
}

// Error is a configuration problem tied to one key.
type Error struct {
	Key string // dotted, e.g. "connect.listen"
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// Load reads defaults, then the file at path (if path is not empty), then
// the environment given as KEY=VALUE strings (os.Environ() in production),
// and does not validate: callers apply flags and then call Validate.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := Decode(b, &cfg); err != nil {
			return cfg, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Decode decodes TOML over cfg; keys it does not know are an error, because
// a misspelt key silently ignored is a setting the admin thinks they made.
func Decode(b []byte, cfg *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			msg := fmt.Sprintf("line %d: %s", perr.Position.Line, perr.Message)
			if perr.LastKey != "" {
				// A value of the wrong form: name the key it was for.
				return &Error{Key: perr.LastKey, Msg: msg}
			}
			return errors.New(msg)
		}
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return &Error{Key: keys[0], Msg: "unknown key" + plural(keys)}
	}
	return nil
}

func plural(keys []string) string {
	if len(keys) == 1 {
		return ""
	}
	return fmt.Sprintf(" (also unknown: %s)", strings.Join(keys[1:], ", "))
}

// EnvPrefix starts every environment variable the suite reads.
const EnvPrefix = "ATRIUM_"

// applyEnv sets each field whose ATRIUM_<SECTION>_<KEY> variable is present.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	return walk(reflect.ValueOf(cfg).Elem(), "", func(key string, f reflect.Value) error {
		name := EnvName(key)
		v, ok := env[name]
		if !ok {
			return nil
		}
		if err := setString(f, v); err != nil {
			return &Error{Key: key, Msg: fmt.Sprintf("from %s: %v", name, err)}
		}
		return nil
	})
}

// EnvName is the environment variable that sets a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every dotted key, in file order; docs and tests use it.
func Keys() []string {
	var keys []string
	cfg := Default()
	_ = walk(reflect.ValueOf(&cfg).Elem(), "", func(key string, _ reflect.Value) error {
		keys = append(keys, key)
		return nil
	})
	return keys
}

func walk(v reflect.Value, prefix string, fn func(key string, f reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := sf.Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			if err := walk(f, key, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(key, f); err != nil {
			return err
		}
	}
	return nil
}

type textUnmarshaler interface{ UnmarshalText([]byte) error }

func setString(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(textUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", s)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		f.SetInt(n)
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}

// Validate checks every value and returns the first problem as an *Error.
func (c *Config) Validate() error {
	s := c.Shared
	if strings.TrimSpace(s.DataDir) == "" {
		return &Error{Key: "shared.data_dir", Msg: "must not be empty"}
	}
	if s.DatabaseURL != "" {
		if err := validateDatabaseURL(s.DatabaseURL); err != nil {
			return &Error{Key: "shared.database_url", Msg: err.Error()}
		}
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "shared.log_level", Msg: fmt.Sprintf("%q is not one of debug, info, warn, error", s.LogLevel)}
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		return &Error{Key: "shared.log_format", Msg: fmt.Sprintf("%q is not one of text, json", s.LogFormat)}
	}
	ports := map[string]string{}
	for _, p := range Products {
		srv, _ := c.Server(p)
		if err := srv.validate(p); err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(srv.Listen)
		if port != "0" {
			if other, dup := ports[port]; dup {
				return &Error{Key: p + ".listen", Msg: fmt.Sprintf("port %s is already used by %s.listen", port, other)}
			}
			ports[port] = p
		}
	}
	return nil
}

func (s *Server) validate(p string) error {
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return &Error{Key: p + ".listen", Msg: fmt.Sprintf("%q is not host:port", s.Listen)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &Error{Key: p + ".listen", Msg: fmt.Sprintf("port %q is not 0-65535", port)}
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return &Error{Key: p + ".listen", Msg: fmt.Sprintf("host %q is not an IP address or localhost", host)}
	}
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: p + ".public_url", Msg: fmt.Sprintf("%q is not an absolute http(s) URL", s.PublicURL)}
		}
	}
	if s.MaxBodyBytes <= 0 {
		return &Error{Key: p + ".max_body_bytes", Msg: "must be positive"}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"read_header_timeout", s.ReadHeaderTimeout}, {"idle_timeout", s.IdleTimeout}, {"shutdown_timeout", s.ShutdownTimeout}} {
		if d.v <= 0 {
			return &Error{Key: p + "." + d.key, Msg: "must be positive"}
		}
	}
	return nil
}

func validateDatabaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q is not postgres:// (leave empty for SQLite)", u.Scheme)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return fmt.Errorf("no host")
	}
	return nil
}

// ProductDataDir is where a product keeps its files (and SQLite database).
func (c *Config) ProductDataDir(product string) string {
	return filepath.Join(c.Shared.DataDir, product)
}
