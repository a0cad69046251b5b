package db

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/atrium-suite/atrium/shared/config"
)

// OpenSuite opens the part of the suite database that schema owns, as the
// configuration says: the schema in PostgreSQL when shared.database_url is
// set, otherwise its own SQLite file, DATA_DIR/<schema>/<schema>.db. Every
// product and shared store opens its database this way, so the layout of
// the data dir and the database is decided in one place.
func OpenSuite(ctx context.Context, shared config.Shared, schema string, migrations fs.FS, log *slog.Logger) (*DB, error) {
	d, err := Open(ctx, Config{
		PostgresDSN: shared.DatabaseURL,
		SQLitePath:  filepath.Join(shared.DataDir, schema, schema+".db"),
		Schema:      schema,
		Migrations:  migrations,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", schema, err)
	}
	return d, nil
}
