package postgres

import (
	"fmt"
	"strings"
)

// DefaultSchema is the schema Spool's tables live in unless configured
// (SPOOL_DB_SCHEMA).
const DefaultSchema = "spool"

// Spool's statements and migrations are written for DefaultSchema: tables
// as spool.spool_jobs, the notification channel as "spool:jobs". Rewriter
// turns them into statements for schema, so that the same text serves any
// schema and never depends on a session's search_path.
func Rewriter(schema string) *strings.Replacer {
	return strings.NewReplacer(DefaultSchema+":jobs", Channel(schema), DefaultSchema+".", schema+".")
}

// Channel is the NOTIFY channel of schema's job inserts.
func Channel(schema string) string { return schema + ":jobs" }

// CheckSchemaName accepts plain lowercase identifiers only, so a schema name
// never needs quoting in statements or in the channel name.
func CheckSchemaName(name string) error {
	ok := len(name) > 0 && len(name) <= 48 && name[0] >= 'a' && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if !ok || reserved[name] || strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("schema name %q: use 1-48 characters of a-z, 0-9 and '_', starting with a letter, not pg_ and not an SQL keyword", name)
	}
	return nil
}

// reserved holds the SQL keywords PostgreSQL refuses as bare schema names.
var reserved = map[string]bool{"all": true, "analyse": true, "analyze": true, "and": true, "any": true, "array": true,
	"as": true, "asc": true, "both": true, "case": true, "cast": true, "check": true, "collate": true, "column": true,
	"constraint": true, "create": true, "default": true, "desc": true, "distinct": true, "do": true, "else": true,
	"end": true, "except": true, "false": true, "for": true, "foreign": true, "from": true, "grant": true, "group": true,
	"having": true, "in": true, "into": true, "leading": true, "limit": true, "not": true, "null": true, "offset": true,
	"on": true, "only": true, "or": true, "order": true, "primary": true, "references": true, "select": true,
	"table": true, "then": true, "to": true, "true": true, "union": true, "unique": true, "user": true, "using": true,
	"when": true, "where": true, "with": true}
