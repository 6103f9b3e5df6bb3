// Package config reads a service's settings from the environment (prefix
// SPOOL_) with envconfig, and prints them all for -h.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// Prefix of every variable.
const Prefix = "SPOOL"

// Common holds what both services read.
type Common struct {
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL (DATABASE_URL is read when SPOOL_DATABASE_URL is unset)"`
	AdminAddr   string `envconfig:"ADMIN_ADDR" default:":9090" desc:"listen address of /metrics, /healthz and /readyz"`
	LogLevel    string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat   string `envconfig:"LOG_FORMAT" default:"json" desc:"json or text"`
	DBMaxConns  int32  `envconfig:"DB_MAX_CONNS" default:"10" desc:"database pool size of this process"`
	DBSchema    string `envconfig:"DB_SCHEMA" default:"spool" desc:"PostgreSQL schema of Spool's tables (created by migrate; nothing goes in public)"`
}

// ErrHelp is returned by Load after printing help for -h.
var ErrHelp = errors.New("help requested")

// Load fills spec, then every extra spec, from the environment. With -h or
// --help among args it prints every variable with its default and returns
// ErrHelp. Errors name the offending variable.
func Load(spec any, args []string, out io.Writer, extra ...any) error {
	specs := append([]any{spec}, extra...)
	fs := flag.NewFlagSet("spool", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		usage(specs, out)
		return ErrHelp
	}
	for _, s := range specs {
		if err := envconfig.Process(Prefix, s); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	return nil
}

func usage(specs []any, out io.Writer) {
	fmt.Fprintln(out, "Configuration is read from the environment only:")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, s := range specs {
		_ = envconfig.Usagef(Prefix, s, tw, "{{range .}}{{usage_key .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}")
	}
	_ = tw.Flush()
}
