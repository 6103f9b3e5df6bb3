// Command spool-worker is Spool's stock worker: it runs the kinds that
// ship with Spool, and the order demo's when SPOOL_DEMO is true. A team's
// own worker is built the same way, on package workerapp (see
// examples/customworker).
package main

import (
	"errors"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/emailkind"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/workerapp"
)

// settings are the stock worker's own switches.
type settings struct {
	DiagnosticJobs bool `envconfig:"DIAGNOSTIC_JOBS" default:"true" desc:"run the diagnostic kinds noop, sleep and fail"`
	Demo           bool `envconfig:"DEMO" default:"false" desc:"run the order demo's kinds (examples/orders); its tables must be migrated (spool-api migrate with SPOOL_DEMO=true)"`
}

func main() {
	var s settings
	var sim orders.Settings
	var smtp emailkind.Settings
	var hk httpkind.Settings // the http kind, on when SPOOL_HTTP_ALLOWED_HOSTS is set
	workerapp.App{
		Name:     "spool-worker",
		Settings: []any{&s, &sim, &smtp, &hk},
		Check:    func() error { return errors.Join(sim.Check(), smtp.Check(), hk.Check()) },
		Register: func(kinds *jobqueue.Kinds, d workerapp.Deps) error {
			if s.DiagnosticJobs {
				diagnostic.Add(kinds)
			}
			if smtp.Enabled() {
				if err := emailkind.Add(kinds, d.Client, smtp); err != nil {
					return err
				}
			}
			if s.Demo {
				orders.AddKinds(kinds, d.Client, sim)
			}
			return httpkind.AddWith(kinds, hk, httpkind.Deps{Tokens: d.Client, Registerer: d.Registry})
		},
		Migrations: func(*workerapp.Config) ([]*postgres.Migrations, error) {
			if s.Demo {
				return []*postgres.Migrations{orders.Migrations()}, nil
			}
			return nil, nil
		},
	}.Main()
}
