package orders

import (
	"embed"
	"io/fs"

	"github.com/spoolq/spool/shared/postgres"
)

// Schema holds the demo's tables.
const Schema = "spool_demo"

//go:embed migrations/*.up.sql
var migrationFS embed.FS

// Migrations are the demo's own migrations, in its own schema and with
// its own version table; spool-api migrate applies them when SPOOL_DEMO is
// true.
func Migrations() *postgres.Migrations {
	sub, _ := fs.Sub(migrationFS, "migrations")
	return &postgres.Migrations{Name: "orders demo", Schema: Schema, Table: "schema_migrations", Files: sub, Written: Schema}
}
