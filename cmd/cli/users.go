package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
)

// newUsers is `atrium users`: local administration of the suite's user
// directory, run on a server of the suite (it opens the suite database
// directly, as rspm's CLI does).
func newUsers(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the suite's users, roles and API keys",
		Long: `Manage the suite's users: add them, list them, set their role (viewer,
publisher, admin), lock them (their sessions and API keys stop working at
once) and mint API keys for automation.`,
	}
	f.registerPersistent(cmd)
	open := func(ctx context.Context) (*accounts.Store, error) {
		cfg, err := f.load()
		if err != nil {
			return nil, err
		}
		return accounts.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	}
	withStore := func(fn func(ctx context.Context, s *accounts.Store, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			s, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			return fn(cmd.Context(), s, args)
		}
	}

	var add struct {
		role, name, email string
		passwordStdin     bool
	}
	addCmd := &cobra.Command{
		Use:   "add USERNAME",
		Short: "Add a user of the embedded provider",
		Long: `Add a user who signs in with a password at the embedded provider. The
password is read from standard input with --password-stdin, or generated and
printed once.`,
		Args: cobra.ExactArgs(1),
		RunE: withStore(func(ctx context.Context, s *accounts.Store, args []string) error {
			password := ""
			if add.passwordStdin {
				line, err := bufio.NewReader(stdin).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			} else {
				password = accounts.NewPassword()
			}
			u, err := s.AddUser(ctx, accounts.NewUser{
				Username: args[0], Name: add.name, Email: add.email, Password: password, Role: accounts.Role(add.role),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added %s (%s)\n", u.Username, u.Role)
			if !add.passwordStdin {
				fmt.Fprintf(stdout, "password: %s\n", password)
			}
			return nil
		}),
	}
	addCmd.Flags().StringVar(&add.role, "role", config.RoleViewer, "viewer, publisher or admin")
	addCmd.Flags().StringVar(&add.name, "name", "", "display name")
	addCmd.Flags().StringVar(&add.email, "email", "", "email address")
	addCmd.Flags().BoolVar(&add.passwordStdin, "password-stdin", false, "read the password from standard input")

	var output string
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: withStore(func(ctx context.Context, s *accounts.Store, _ []string) error {
			users, err := s.ListUsers(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				type row struct {
					ID       string `json:"id"`
					Username string `json:"username"`
					Name     string `json:"name"`
					Email    string `json:"email"`
					Role     string `json:"role"`
					Locked   bool   `json:"locked"`
					External bool   `json:"external"`
				}
				rows := make([]row, 0, len(users))
				for _, u := range users {
					rows = append(rows, row{u.ID, u.Username, u.Name, u.Email, string(u.Role), u.Locked, u.Issuer != ""})
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tROLE\tSTATUS\tNAME\tEMAIL")
			for _, u := range users {
				status := "active"
				if u.Locked {
					status = "locked"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, status, u.Name, u.Email)
			}
			return tw.Flush()
		}),
	}
	listCmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")

	setRole := &cobra.Command{
		Use:   "set-role USERNAME viewer|publisher|admin",
		Short: "Set a user's role",
		Args:  cobra.ExactArgs(2),
		RunE: withStore(func(ctx context.Context, s *accounts.Store, args []string) error {
			if err := s.SetRole(ctx, args[0], accounts.Role(args[1])); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s is now %s\n", args[0], args[1])
			return nil
		}),
	}
	lockCmd := func(lock bool) *cobra.Command {
		use, short, done := "lock USERNAME", "Lock a user: their sessions and API keys stop working at once", "locked"
		if !lock {
			use, short, done = "unlock USERNAME", "Unlock a user", "unlocked"
		}
		return &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(1),
			RunE: withStore(func(ctx context.Context, s *accounts.Store, args []string) error {
				if err := s.SetLocked(ctx, args[0], lock); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s %s\n", args[0], done)
				return nil
			}),
		}
	}

	var tok struct {
		product, name, expires string
	}
	tokenCmd := &cobra.Command{
		Use:   "token USERNAME",
		Short: "Mint an API key for a user (printed once)",
		Long: `Mint an API key for automation, acting with the user's rights. It is printed
once and stored only as a hash. Connect and Workbench accept it as
"Authorization: Key KEY"; Package Manager as basic auth __token__:KEY.
Without --product the key works for every product.`,
		Args: cobra.ExactArgs(1),
		RunE: withStore(func(ctx context.Context, s *accounts.Store, args []string) error {
			if tok.product != "" && !slices.Contains(config.Products, tok.product) {
				return fmt.Errorf("--product %q is not one of %s", tok.product, strings.Join(config.Products, ", "))
			}
			var expiresAt *time.Time
			if tok.expires != "" {
				d, err := parseExpiry(tok.expires)
				if err != nil {
					return err
				}
				t := time.Now().Add(d)
				expiresAt = &t
			}
			u, err := s.UserByUsername(ctx, args[0])
			if err != nil {
				return fmt.Errorf("user %s: %w", args[0], err)
			}
			name := tok.name
			if name == "" {
				name = "atrium users token"
			}
			key, _, err := s.CreateAPIKey(ctx, u.ID, name, tok.product, expiresAt)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, key)
			return nil
		}),
	}
	tokenCmd.Flags().StringVar(&tok.product, "product", "", "limit the key to one product (connect, workbench, packagemanager)")
	tokenCmd.Flags().StringVar(&tok.name, "name", "", "a name to recognise the key by")
	tokenCmd.Flags().StringVar(&tok.expires, "expires", "", "lifetime, e.g. 90d, 12h (default: no expiry)")

	cmd.AddCommand(addCmd, listCmd, setRole, lockCmd(true), lockCmd(false), tokenCmd)
	return cmd
}

// parseExpiry accepts Go durations and whole days ("90d"), since key
// lifetimes are usually given in days.
func parseExpiry(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n > 0 && n < 100000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("--expires %q is not a lifetime like 90d or 12h", s)
}
