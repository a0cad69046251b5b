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
	"time"

	"github.com/BurntSushi/toml"
)

// Default ports are Posit's, so an admin's habits and firewall rules carry over.
const (
	DefaultConnectPort        = 3939
	DefaultWorkbenchPort      = 8787
	DefaultPackageManagerPort = 4242
	DefaultIdentityPort       = 5556
)

// Product names, as used in section names, URLs, schema names and data subdirs.
const (
	Connect        = "connect"
	Workbench      = "workbench"
	PackageManager = "packagemanager"
	// Identity is the embedded OpenID provider; not a product, but a server
	// of the suite with the same HTTP settings.
	Identity = "identity"
)

// Products lists the product names in the order the suite starts them.
var Products = []string{PackageManager, Connect, Workbench}

// Config is the whole of atrium.toml.
type Config struct {
	Shared         Shared               `toml:"shared"`
	Auth           Auth                 `toml:"auth"`
	Identity       Server               `toml:"identity"`
	Connect        ConnectConfig        `toml:"connect"`
	Workbench      Product              `toml:"workbench"`
	PackageManager PackageManagerConfig `toml:"packagemanager"`
}

// ConnectConfig is Connect's section: the server settings every product
// has, who content runs as, and the scheduler's defaults for content that
// sets none of its own (Posit Connect's Scheduler settings and defaults).
type ConnectConfig struct {
	Product
	// RunAs is the unprivileged account content processes run as when the
	// server runs as root; Connect creates it (a system user without a
	// login shell) when it does not exist. Not root, content runs as the
	// server's own user and RunAs is not used.
	RunAs string `toml:"run_as"`
	// MinProcesses are kept running per content item even when idle.
	MinProcesses int `toml:"min_processes"`
	// MaxProcesses caps the processes of one content item.
	MaxProcesses int `toml:"max_processes"`
	// MaxConnsPerProcess is how many requests (open websockets count) one
	// process is given at once before new ones wait for room.
	MaxConnsPerProcess int `toml:"max_conns_per_process"`
	// LoadFactor (0–1): another process starts when the connections in use
	// exceed this share of what the running processes can take.
	LoadFactor float64 `toml:"load_factor"`
	// ProcessIdleTimeout stops a process that served nothing for this long
	// (while more than MinProcesses run).
	ProcessIdleTimeout Duration `toml:"process_idle_timeout"`
	// InitTimeout bounds how long a process may take to start listening.
	InitTimeout Duration `toml:"init_timeout"`
}

// PackageManagerConfig is Package Manager's section: the server settings every
// product has, plus where its PyPI mirror reads from.
type PackageManagerConfig struct {
	Product
	// PyPIUpstream is the simple index the default "pypi" repository
	// mirrors. Empty means the index the host's pip uses (PIP_INDEX_URL,
	// pip's configuration, or pip's own default).
	PyPIUpstream string `toml:"pypi_upstream"`
	// MirrorRefresh is how long a mirrored project's listing is used
	// before upstream is asked again ("latest" only; snapshots never ask).
	MirrorRefresh Duration `toml:"mirror_refresh"`
	// SeedDir, when set, is a directory of wheels, sdists and R source
	// packages imported into the default repositories on first start, so
	// an air-gapped suite can install without any upstream.
	SeedDir string `toml:"seed_dir"`
}

// Roles a user can have, least to most privileged.
const (
	RoleViewer    = "viewer"
	RolePublisher = "publisher"
	RoleAdmin     = "admin"
)

// Auth configures sign-on for every product.
type Auth struct {
	// Issuer is an external OpenID provider's issuer URL. Empty means the
	// suite runs its embedded provider at identity.public_url.
	Issuer string `toml:"issuer"`
	// GroupsClaim names the ID-token claim that lists the user's groups.
	GroupsClaim string `toml:"groups_claim"`
	// AdminGroups and PublisherGroups map groups to roles; a user in none
	// gets DefaultRole. With no group mapping, roles come from the suite's
	// user table (atrium users set-role).
	AdminGroups     []string `toml:"admin_groups"`
	PublisherGroups []string `toml:"publisher_groups"`
	// DefaultRole is the role of a user the mapping gives no role.
	DefaultRole string `toml:"default_role"`
	// SessionLifetime bounds a product sign-in session.
	SessionLifetime Duration `toml:"session_lifetime"`
}

// Product is a product server's settings: its HTTP server and its OpenID
// client registration.
type Product struct {
	Server
	// OIDCClientID is the product's client id at the provider.
	OIDCClientID string `toml:"oidc_client_id"`
	// OIDCClientSecret is required with an external issuer; the embedded
	// provider derives one from the suite's secret key when it is empty.
	OIDCClientSecret string `toml:"oidc_client_secret"`
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
	// SecretKeyFile holds the suite's secret key (created on first start);
	// empty means DataDir/secret.key.
	SecretKeyFile string `toml:"secret_key_file"`
	// Procs is how many threads run a server's Go code at once (Go's
	// GOMAXPROCS); 0 means half the CPUs the process may use, at least
	// one (platform.ServerProcs says why). A GOMAXPROCS environment
	// variable wins over it.
	Procs int `toml:"procs"`
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
	product := func(name string, port int, body ByteSize) Product {
		return Product{Server: srv(port, body), OIDCClientID: "atrium-" + name}
	}
	return Config{
		Auth: Auth{
			GroupsClaim:     "groups",
			DefaultRole:     RoleViewer,
			SessionLifetime: Duration(24 * time.Hour),
		},
		Identity: srv(DefaultIdentityPort, 1<<20),
		Shared: Shared{
			DataDir:   "./data",
			LogLevel:  "info",
			LogFormat: "text",
		},
		// Bundles and package uploads are large; Workbench proxies IDE
		// uploads. 1 GiB matches what data-science content needs without
		// letting a single request fill the disk.
		Connect: ConnectConfig{
			Product:            product(Connect, DefaultConnectPort, 1<<30),
			RunAs:              "atrium-content",
			MaxProcesses:       3,
			MaxConnsPerProcess: 20,
			LoadFactor:         0.5,
			ProcessIdleTimeout: Duration(2 * time.Minute),
			InitTimeout:        Duration(time.Minute),
		},
		Workbench: product(Workbench, DefaultWorkbenchPort, 1<<30),
		PackageManager: PackageManagerConfig{
			Product:       product(PackageManager, DefaultPackageManagerPort, 1<<30),
			MirrorRefresh: Duration(10 * time.Minute),
		},
	}
}

// Product returns the settings of the named product.
func (c *Config) Product(product string) (*Product, error) {
	switch product {
	case Connect:
		return &c.Connect.Product, nil
	case Workbench:
		return &c.Workbench, nil
	case PackageManager:
		return &c.PackageManager.Product, nil
	}
	return nil, fmt.Errorf("unknown product %q (want one of %s)", product, strings.Join(Products, ", "))
}

// Server returns the HTTP settings of a product or of the identity server.
func (c *Config) Server(name string) (*Server, error) {
	if name == Identity {
		return &c.Identity, nil
	}
	p, err := c.Product(name)
	if err != nil {
		return nil, err
	}
	return &p.Server, nil
}

// EmbeddedIdentity reports whether the suite runs its own OpenID provider.
func (c *Config) EmbeddedIdentity() bool { return c.Auth.Issuer == "" }

// SecretKeyPath is where the suite's secret key lives.
func (c *Config) SecretKeyPath() string {
	if c.Shared.SecretKeyFile != "" {
		return c.Shared.SecretKeyFile
	}
	return filepath.Join(c.Shared.DataDir, "secret.key")
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
		if sf.Anonymous {
			// Embedded structs are flattened, as the TOML decoder does.
			if err := walk(v.Field(i), prefix, fn); err != nil {
				return err
			}
			continue
		}
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
	case reflect.Slice:
		// Lists come from the environment comma-separated.
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		f.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		f.SetFloat(n)
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
	if s.Procs < 0 {
		return &Error{Key: "shared.procs", Msg: fmt.Sprintf("%d is negative (0 means half the CPUs)", s.Procs)}
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
	if err := c.Auth.validate(); err != nil {
		return err
	}
	ports := map[string]string{}
	for _, p := range append([]string{Identity}, Products...) {
		if p == Identity && !c.EmbeddedIdentity() {
			continue // not started: its port is free for others
		}
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
	if err := c.Connect.validate(); err != nil {
		return err
	}
	if c.PackageManager.MirrorRefresh < 0 {
		return &Error{Key: "packagemanager.mirror_refresh", Msg: "must not be negative"}
	}
	if u := c.PackageManager.PyPIUpstream; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return &Error{Key: "packagemanager.pypi_upstream", Msg: fmt.Sprintf("%q is not an absolute http(s) URL", u)}
		}
	}
	return c.validateClients()
}

func (c *ConnectConfig) validate() error {
	switch {
	case c.MinProcesses < 0:
		return &Error{Key: "connect.min_processes", Msg: "must not be negative"}
	case c.MaxProcesses < 1:
		return &Error{Key: "connect.max_processes", Msg: "must be at least 1"}
	case c.MinProcesses > c.MaxProcesses:
		return &Error{Key: "connect.min_processes", Msg: fmt.Sprintf("%d is more than connect.max_processes (%d)", c.MinProcesses, c.MaxProcesses)}
	case c.MaxConnsPerProcess < 1:
		return &Error{Key: "connect.max_conns_per_process", Msg: "must be at least 1"}
	case c.LoadFactor < 0 || c.LoadFactor > 1:
		return &Error{Key: "connect.load_factor", Msg: "must be between 0 and 1"}
	case c.ProcessIdleTimeout <= 0:
		return &Error{Key: "connect.process_idle_timeout", Msg: "must be positive"}
	case c.InitTimeout <= 0:
		return &Error{Key: "connect.init_timeout", Msg: "must be positive"}
	}
	return nil
}

func (a *Auth) validate() error {
	if a.Issuer != "" {
		u, err := url.Parse(a.Issuer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "auth.issuer", Msg: fmt.Sprintf("%q is not an absolute http(s) URL", a.Issuer)}
		}
	}
	switch a.DefaultRole {
	case RoleViewer, RolePublisher, RoleAdmin:
	default:
		return &Error{Key: "auth.default_role", Msg: fmt.Sprintf("%q is not one of viewer, publisher, admin", a.DefaultRole)}
	}
	if (len(a.AdminGroups) > 0 || len(a.PublisherGroups) > 0) && a.GroupsClaim == "" {
		return &Error{Key: "auth.groups_claim", Msg: "must name a claim when admin_groups or publisher_groups are set"}
	}
	if a.SessionLifetime <= 0 {
		return &Error{Key: "auth.session_lifetime", Msg: "must be positive"}
	}
	return nil
}

func (c *Config) validateClients() error {
	for _, name := range Products {
		p, _ := c.Product(name)
		if p.OIDCClientID == "" {
			return &Error{Key: name + ".oidc_client_id", Msg: "must not be empty"}
		}
		if !c.EmbeddedIdentity() && p.OIDCClientSecret == "" {
			return &Error{Key: name + ".oidc_client_secret", Msg: "is required with an external auth.issuer"}
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
