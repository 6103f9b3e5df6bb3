// Command shop-worker is the shop's own Spool worker: the stock service
// plumbing (SPOOL_* settings, metrics and health on the admin port, clean
// stop on SIGTERM) around the shop's kinds.
package main

import (
	"example.com/shop/shop"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/workerapp"
)

func main() {
	workerapp.App{Name: "shop-worker", Register: func(kinds *jobqueue.Kinds, d workerapp.Deps) error {
		shop.AddKinds(kinds, d.Client)
		return nil
	}}.Main()
}
