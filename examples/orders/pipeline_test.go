package orders_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/shared/proctest"
)

// The order pipeline through real processes: crashes mid-workflow, and
// many concurrent orders with failures, reconciled against every ledger.

func TestOrderPipelineSurvivesKill9WithEachEffectOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	env := []string{"SPOOL_SIM_LATENCY=1500ms", "SPOOL_SIM_EMAIL_FAILURE_RATE=0", "SPOOL_SIM_PAYMENT_FAILURE_RATE=0",
		"SPOOL_LEASE_DURATION=1s", "SPOOL_RESCUE_INTERVAL=200ms"}
	workers := map[string]*proctest.Proc{}
	for i := range 3 {
		id := fmt.Sprintf("w%d", i)
		workers[id] = b.startWorker(t, append(env, "SPOOL_WORKER_ID="+id)...)
	}
	store := b.store
	o, err := store.Place(ctx, orders.NewOrder{CustomerEmail: "ada@example.com", CardNumber: "4242424242424242",
		Items: []orders.Item{{SKU: "mug", Quantity: 2}, {SKU: "hoodie", Quantity: 1}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	// Kill whichever worker runs the most of the three parallel steps while they run.
	var victim string
	proctest.Eventually(t, 20*time.Second, "the parallel steps to run", func() bool {
		rows, _ := b.db.Pool.Query(ctx, `SELECT worker_id FROM spool.spool_jobs WHERE workflow_id = $1 AND status = 'running'
			AND step IN ('email', 'invoice', 'inventory') GROUP BY worker_id ORDER BY count(*) DESC LIMIT 1`, o.WorkflowID)
		defer rows.Close()
		for rows.Next() {
			_ = rows.Scan(&victim)
		}
		return victim != ""
	})
	time.Sleep(700 * time.Millisecond) // after the effect, before the step completes
	workers[victim].Signal(syscall.SIGKILL)
	workers[victim].Wait(5 * time.Second)
	delete(workers, victim)

	proctest.Eventually(t, 60*time.Second, "the order to be fulfilled", func() bool {
		got, err := store.Get(ctx, o.ID)
		return err == nil && got.Status == "fulfilled"
	})
	for _, w := range workers {
		stopClean(t, w, 10*time.Second)
	}
	counts := map[string]int{}
	for table, q := range map[string]string{
		"payments":  `SELECT count(*) FROM spool_demo.payments WHERE order_id = $1`,
		"emails":    `SELECT count(*) FROM spool_demo.emails WHERE order_id = $1`,
		"invoices":  `SELECT count(*) FROM spool_demo.invoices WHERE order_id = $1`,
		"inventory": `SELECT count(*) FROM spool_demo.inventory_syncs WHERE order_id = $1`,
	} {
		var n int
		if err := b.db.Pool.QueryRow(ctx, q, o.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	if counts["payments"] != 1 || counts["emails"] != 1 || counts["invoices"] != 1 || counts["inventory"] != 2 {
		t.Fatalf("effects recorded = %v; want 1 payment, 1 email, 1 invoice, 2 inventory lines", counts)
	}
	// Every step completed, and the ledger holds one entry per effect:
	// charge, invoice and inventory keyed by order, the email by its job.
	var steps, completed, ledger int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'completed'),
		(SELECT count(*) FROM spool.spool_effects WHERE key LIKE 'order:' || $2::bigint || ':%'
			OR key IN (SELECT 'orders.send_email:' || id || ':email' FROM spool.spool_jobs WHERE workflow_id = $1))
		FROM spool.spool_jobs WHERE workflow_id = $1`, o.WorkflowID, o.ID).Scan(&steps, &completed, &ledger); err != nil {
		t.Fatal(err)
	}
	if steps != 5 || completed != 5 || ledger != 4 {
		t.Fatalf("%d steps, %d completed, %d ledger entries; want 5 completed steps and 4 entries (charge, email, invoice, inventory)",
			steps, completed, ledger)
	}
	var lost int
	_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM spool.spool_jobs WHERE workflow_id = $1 AND errors::text LIKE '%worker lost%'`, o.WorkflowID).Scan(&lost)
	t.Logf("killed %s mid-step; %d steps were rescued and re-run; each effect recorded once", victim, lost)
	if lost == 0 {
		t.Error("no step was interrupted by the kill: the test did not test a crash")
	}
}

func TestFiveHundredConcurrentOrdersReconcile(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var ws []*proctest.Proc
	for i := range 3 {
		ws = append(ws, b.startWorker(t, fmt.Sprintf("SPOOL_WORKER_ID=w%d", i), "SPOOL_SIM_LATENCY=5ms", "SPOOL_SIM_EMAIL_FAILURE_RATE=0.1",
			"SPOOL_BACKOFF_BASE=20ms", "SPOOL_BACKOFF_MAX=200ms", "SPOOL_LOG_LEVEL=info", "SPOOL_QUEUES=default:20"))
	}
	api, base := b.startAPI(t)
	before := stock(t, b)

	const n = 500
	var wg sync.WaitGroup
	declined := 0
	for i := range n {
		card := "4242424242424242"
		if i%20 == 0 { // 5% declined
			card, declined = "4000000000000002", declined+1
		}
		body := fmt.Sprintf(`{"customer_email":"c%d@example.com","card_number":"%s","items":[{"sku":"mug","quantity":%d},{"sku":"stickers","quantity":1}]}`, i, card, 1+i%3)
		wg.Go(func() { placeWithRetry(t, base+"/v1/orders", body) })
	}
	wg.Wait()
	store := b.store
	var st *orders.Stats
	proctest.Eventually(t, 180*time.Second, "every order fulfilled or failed", func() bool {
		var err error
		st, err = store.Stats(ctx)
		return err == nil && st.Orders["processing"] == 0 && st.Orders["fulfilled"]+st.Orders["failed"] == n
	})
	for _, w := range append(ws, api) {
		stopClean(t, w, 10*time.Second)
	}
	t.Logf("outcome: %+v", *st)
	fulfilled := st.Orders["fulfilled"]
	if st.Orders["failed"] != int64(declined) || st.DeclinedCharges != int64(declined) {
		t.Errorf("failed orders %d, dead charges %d; want exactly the %d declined cards", st.Orders["failed"], st.DeclinedCharges, declined)
	}
	if st.Charges != fulfilled || st.Emails != fulfilled || st.Invoices != fulfilled || st.InventorySyncs != fulfilled || st.Refunds != 0 {
		t.Errorf("charges %d, emails %d, invoices %d, syncs %d, refunds %d; want %d each and no refunds",
			st.Charges, st.Emails, st.Invoices, st.InventorySyncs, st.Refunds, fulfilled)
	}
	if st.Retries == 0 {
		t.Error("no step was retried: the simulated failures did not happen")
	}
	// The ledger and the services' own tables tell the same story.
	var ledger, records [4]int64
	if err := b.db.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM spool.spool_effects WHERE key LIKE 'order:%:charge'),
		(SELECT count(*) FROM spool.spool_effects WHERE key LIKE 'orders.send_email:%:email'),
		(SELECT count(*) FROM spool.spool_effects WHERE key LIKE 'order:%:invoice'),
		(SELECT count(*) FROM spool.spool_effects WHERE key LIKE 'order:%:inventory'),
		(SELECT count(*) FROM spool_demo.payments), (SELECT count(*) FROM spool_demo.emails),
		(SELECT count(*) FROM spool_demo.invoices), (SELECT count(DISTINCT order_id) FROM spool_demo.inventory_syncs)`).
		Scan(&ledger[0], &ledger[1], &ledger[2], &ledger[3], &records[0], &records[1], &records[2], &records[3]); err != nil {
		t.Fatal(err)
	}
	if ledger != records {
		t.Errorf("ledger entries (charge, email, invoice, inventory) %v, service records %v; want equal", ledger, records)
	}
	var dupEmails int
	_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT order_id FROM spool_demo.emails GROUP BY order_id HAVING count(*) > 1) d`).Scan(&dupEmails)
	if dupEmails != 0 {
		t.Errorf("%d orders got more than one confirmation email", dupEmails)
	}
	after := stock(t, b)
	var sold map[string]int64 = map[string]int64{}
	rows, _ := b.db.Pool.Query(ctx, `SELECT i.sku, sum(i.quantity) FROM spool_demo.order_items i JOIN spool_demo.orders o ON o.id = i.order_id
		WHERE o.status = 'fulfilled' GROUP BY i.sku`)
	for rows.Next() {
		var sku string
		var q int64
		_ = rows.Scan(&sku, &q)
		sold[sku] = q
	}
	for sku, was := range before {
		if after[sku] != was-sold[sku] {
			t.Errorf("stock of %s = %d, want %d - %d sold = %d", sku, after[sku], was, sold[sku], was-sold[sku])
		}
	}
}

func stock(t *testing.T, b *bundle) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	rows, err := b.db.Pool.Query(context.Background(), `SELECT sku, stock FROM spool_demo.products`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var sku string
		var s int64
		_ = rows.Scan(&sku, &s)
		out[sku] = s
	}
	return out
}
