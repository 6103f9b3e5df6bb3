package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/proctest"
)

// The demo's routes through the stock API binary (SPOOL_DEMO=true): they
// answer in the API's shapes, behind its middleware, and a refusal writes
// nothing.

type orderBody struct {
	ID       int64            `json:"id"`
	Status   string           `json:"status"`
	Total    int64            `json:"total_cents"`
	Last4    string           `json:"card_last4"`
	Pipeline *orders.Pipeline `json:"pipeline"`
}

func do(t *testing.T, method, url, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, res.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, url, b, err)
		}
	}
}

func TestPlaceOrderEnqueuesPipeline(t *testing.T) {
	b := setup(t)
	_, base := b.startAPI(t)
	var o orderBody
	do(t, "POST", base+"/v1/orders", order("ada@example.com", "4242 4242 4242 4242", item("mug", 2), item("stickers", 1)), 201, &o)
	if o.Status != "processing" || o.Total != 2*1200+300 || o.Last4 != "4242" || o.Pipeline == nil || len(o.Pipeline.Steps) != 5 {
		t.Fatalf("order = %+v, want processing, 2700 cents, last4 4242 and a 5-step pipeline", o)
	}
	var got orderBody
	do(t, "GET", fmt.Sprintf("%s/v1/orders/%d", base, o.ID), "", 200, &got)
	if got.ID != o.ID {
		t.Fatalf("GET order = %+v", got)
	}
	if n := b.count(t, `SELECT count(*) FROM spool.spool_jobs WHERE payload::text LIKE '%4242424242424242%' OR payload::text LIKE '%4242 4242%'`); n != 0 {
		t.Error("the full card number was stored in a job payload")
	}
	if n := b.count(t, `SELECT count(*) FROM spool.spool_jobs WHERE type LIKE 'orders.%' AND max_attempts = 6 AND type = 'orders.charge_payment'`); n != 1 {
		t.Errorf("%d charge steps with the kind's 6 attempts, want 1", n)
	}
	do(t, "GET", base+"/v1/products", "", 200, nil)
	do(t, "GET", base+"/v1/orders/stats", "", 200, nil)
}

// orderState fingerprints the demo's tables and Spool's jobs.
func (b *bundle) orderState(t *testing.T) string {
	t.Helper()
	var s string
	if err := b.db.Pool.QueryRow(context.Background(), `SELECT concat_ws('|', (SELECT count(*) FROM spool_demo.orders),
		(SELECT count(*) FROM spool_demo.order_items), (SELECT count(*) FROM spool.spool_jobs), (SELECT count(*) FROM spool.spool_workflows),
		(SELECT string_agg(sku || '=' || stock, ',' ORDER BY sku) FROM spool_demo.products))`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOrderRefusalsWriteNothing(t *testing.T) {
	b := setup(t)
	_, base := b.startAPI(t)
	const card = "4242424242424242"
	for _, tc := range []struct {
		body   string
		status int
	}{
		{order("ada@example.com", card, item("poster", 51)), 409},
		{order("ada@example.com", card, item("unicorn", 1)), 422},
		{order("not-an-email", card, item("mug", 1)), 422},
		{order("ada@example.com", "42", item("mug", 1)), 422},
		{order("ada@example.com", card), 422},
		{order("ada@example.com", card, item("mug", 0)), 422},
		{order("ada@example.com", card, item("mug", 1), item("mug", 1)), 422},
		{`{"customer_email":"ada@example.com","card_number":"4242424242424242","items":[{"sku":"mug","quantity":1}],"coupon":"x"}`, 400},
		{`{"customer_email":"ada@example.com","CUSTOMER_EMAIL":"eve@example.com","card_number":"4242424242424242","items":[{"sku":"mug","quantity":1}]}`, 400},
		{`{"customer_email":"ada@example.com","card_number":"4242424242424242","items":[{"sku":"mug","quantity":1,"\u017fku":"poster"}]}`, 400},
		{`{"customer_email":"ada@example.com","card_number":"4242424242424242","items":[{"sku":"mug\ud800","quantity":1}]}`, 400},
		{`{"customer_email":"ada@example.com","card_number":"4242424242424242","items":[{"sku":"mug","sku":"poster","quantity":1}]}`, 400},
		{`{"customer_email":"ada@example.com","items":[{"sku":"mug"`, 400},
		{order("ada@example.com", card, item("mug\u0000", 1)), 422},
		{order("ada\u0000@example.com", card, item("mug", 1)), 422},
	} {
		before := b.orderState(t)
		var e struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		do(t, "POST", base+"/v1/orders", tc.body, tc.status, &e)
		if e.Error == "" || e.RequestID == "" {
			t.Errorf("%s: error body %+v, want the API's shape", tc.body, e)
		}
		if after := b.orderState(t); after != before {
			t.Errorf("%s: state changed although refused", tc.body)
		}
	}
	do(t, "GET", base+"/v1/orders/424242", "", 404, nil)
	do(t, "GET", base+"/v1/orders/9223372036854775808", "", 404, nil)
	res, err := http.Post(base+"/v1/orders", "application/x-www-form-urlencoded", strings.NewReader("sku=mug"))
	if err != nil || res.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("a form-encoded order: %v %v, want 415", res, err)
	}
	res.Body.Close()
}

func TestConcurrentOrdersNeverOversell(t *testing.T) {
	b := setup(t)
	_, base := b.startAPI(t, "SPOOL_MAX_INFLIGHT=64") // every order reaches the database
	var wg sync.WaitGroup
	codes := make(chan int, 30)
	for range 30 { // 30 orders of 2 posters; 50 in stock
		wg.Go(func() {
			res, err := http.Post(base+"/v1/orders", "application/json", strings.NewReader(order("a@example.com", "4242424242424242", item("poster", 2))))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	stock := b.count(t, `SELECT stock FROM spool_demo.products WHERE sku = 'poster'`)
	if got[201] != 25 || got[409] != 5 || stock != 0 {
		t.Fatalf("answers %v, stock %d; want 25×201, 5×409 and stock 0", got, stock)
	}
}

// The confirmation email is sent once although the worker that sent it
// crashed before completing the step: the effect ledger remembers it.
func TestEffectLedgerSendsEmailOnceAcrossCrash(t *testing.T) {
	b := setup(t)
	// The handler sends, then waits 10s for the provider's acknowledgement:
	// the crash lands after the effect and before the completion.
	first := b.startWorker(t, "SPOOL_SIM_LATENCY=10s", "SPOOL_SIM_EMAIL_FAILURE_RATE=0", "SPOOL_LEASE_DURATION=1s")
	res, err := b.client.Enqueue(context.Background(), jobqueue.EnqueueParams{Kind: orders.SendEmail{}.Kind(),
		Payload: orders.SendEmail{To: "ada@example.com", Subject: "receipt"}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Job.ID
	emails := func() int64 { return b.count(t, `SELECT count(*) FROM spool_demo.emails WHERE job_id = $1`, id) }
	proctest.Eventually(t, 10*time.Second, "the email to be sent", func() bool { return emails() == 1 })
	if j, _ := b.client.Get(context.Background(), id); j.Status != jobqueue.StatusRunning {
		t.Fatalf("job is %s before the crash, want running", j.Status)
	}
	first.Signal(syscall.SIGKILL)
	first.Wait(5 * time.Second)

	second := b.startWorker(t, "SPOOL_SIM_LATENCY=10ms", "SPOOL_SIM_EMAIL_FAILURE_RATE=0", "SPOOL_RESCUE_INTERVAL=200ms")
	var j *jobqueue.Job
	proctest.Eventually(t, 20*time.Second, "the re-run to complete", func() bool {
		j, _ = b.client.Get(context.Background(), id)
		return j != nil && j.Status == jobqueue.StatusCompleted
	})
	if j.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (the crashed one and the re-run)", j.Attempts)
	}
	if n := emails(); n != 1 {
		t.Fatalf("emails sent for the job = %d, want exactly 1", n)
	}
	lines := second.JSONLines("confirmation email sent")
	if len(lines) != 1 || lines[0]["already_sent"] != true {
		t.Errorf("re-run's log = %v, want one line with already_sent=true", lines)
	}
	stopClean(t, second, 5*time.Second)
}
