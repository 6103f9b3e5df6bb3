// Command shop-worker is the shop's own Spool worker: the stock service
// plumbing (SPOOL_* settings, metrics and health on the admin port, clean
// stop on SIGTERM) around the shop's kinds.
//
// It also runs Spool's stock http kind, configured by the same
// SPOOL_HTTP_* variables as the stock worker (off while
// SPOOL_HTTP_ALLOWED_HOSTS is empty): a team's pool can call its own
// services beside its Go kinds.
//
// `shop-worker migrate` creates the shop's own tables (idempotent) and
// exits, the way `spool-api migrate` does for Spool's: run it before the
// workers, e.g. as a Job or an init container.
package main

import (
	"context"
	"fmt"
	"os"

	"example.com/shop/shop"

	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
	"github.com/spoolq/spool/shared/workerapp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		if err := migrate(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "shop-worker migrate: %v\n", err)
			os.Exit(workerapp.ExitFailure)
		}
		return
	}
	var hk httpkind.Settings
	workerapp.App{Name: "shop-worker", Settings: []any{&hk}, Check: hk.Check, Register: func(kinds *jobqueue.Kinds, d workerapp.Deps) error {
		shop.AddKinds(kinds, d.Client)
		return httpkind.AddWith(kinds, hk, httpkind.Deps{Tokens: d.Client, Registerer: d.Registry})
	}}.Main()
}

// migrate creates the shop's tables in the database of SPOOL_DATABASE_URL
// (or DATABASE_URL), read with the worker's own settings.
func migrate(ctx context.Context) error {
	cfg, _, err := workerapp.Load(nil, os.Stdout)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, &postgres.PoolOpts{MaxConns: 2, AppName: "shop-worker migrate"})
	if err != nil {
		return err
	}
	defer pool.Close()
	return shop.Migrate(ctx, pool)
}
