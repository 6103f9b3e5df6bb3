package orders_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// TestOrderBehindPgBouncer places an order through the stock API and runs
// its pipeline on a worker, both behind PgBouncer (Debian's, started by the
// test) as the READMEs recommend it; services/worker's TestBehindPgBouncer
// covers Spool's own write paths the same way.
func TestOrderBehindPgBouncer(t *testing.T) {
	for _, c := range []struct {
		mode   string
		params []string
		listen bool // SPOOL_LISTEN_DATABASE_URL goes to the server directly
	}{
		{mode: proctest.SessionPooling},
		{mode: proctest.TransactionPooling, params: []string{"default_query_exec_mode=simple_protocol"}, listen: true},
	} {
		t.Run(c.mode, func(t *testing.T) {
			b := setup(t)
			pooled := proctest.StartPgBouncer(t, pgtest.AdminURL(), c.mode).URL(b.db.URL, c.params...)
			env := []string{"SPOOL_DATABASE_URL=" + pooled, "SPOOL_SIM_LATENCY=10ms",
				"SPOOL_SIM_EMAIL_FAILURE_RATE=0", "SPOOL_SIM_PAYMENT_FAILURE_RATE=0"}
			if c.listen {
				env = append(env, "SPOOL_LISTEN_DATABASE_URL="+b.db.URL)
			}
			w := b.startWorker(t, env...)
			api, base := b.startAPI(t, "SPOOL_DATABASE_URL="+pooled)

			var o orderBody
			do(t, "POST", base+"/v1/orders", order("ada@example.com", "4242 4242 4242 4242", item("mug", 2), item("hoodie", 1)), 201, &o)
			proctest.Eventually(t, 30*time.Second, "the order to be fulfilled", func() bool {
				var got orderBody
				do(t, "GET", fmt.Sprintf("%s/v1/orders/%d", base, o.ID), "", 200, &got)
				return got.Status == "fulfilled"
			})
			stopClean(t, w, 10*time.Second)
			stopClean(t, api, 10*time.Second)

			effects := b.count(t, `SELECT (SELECT count(*) FROM spool_demo.payments WHERE order_id = $1) * 1000 +
				(SELECT count(*) FROM spool_demo.emails WHERE order_id = $1) * 100 +
				(SELECT count(*) FROM spool_demo.invoices WHERE order_id = $1) * 10 +
				(SELECT count(*) FROM spool_demo.inventory_syncs WHERE order_id = $1)`, o.ID)
			if effects != 1112 {
				t.Errorf("payments, emails, invoices, inventory lines = %04d, want 1112", effects)
			}
			var steps, completed int
			if err := b.db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE j.status = 'completed' AND j.attempts = 1)
				FROM spool.spool_jobs j JOIN spool_demo.orders o ON o.workflow_id = j.workflow_id WHERE o.id = $1`, o.ID).Scan(&steps, &completed); err != nil {
				t.Fatal(err)
			}
			started := len(w.JSONLines("job started"))
			if steps != 5 || completed != 5 || started != 5 {
				t.Fatalf("%d steps, %d completed on their first attempt, %d started; want 5, 5, 5", steps, completed, started)
			}
		})
	}
}
