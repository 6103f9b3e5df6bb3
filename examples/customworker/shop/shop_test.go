package shop_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/shop/shop"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/jobqueue/jobqueuetest"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// TestShopRunsItsOwnKind: an outside module defines a kind, enqueues it in
// its own transaction next to its own orders table, and runs it in its own
// worker binary; the stock spool-api, never compiled with the kind,
// accepts it over HTTP with strict validation.
func TestShopRunsItsOwnKind(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if err := shop.Migrate(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	client, err := jobqueue.NewClient(db.Pool, &jobqueue.ClientOpts{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	shop.AddKinds(kinds, client)

	// The job exists exactly when the order does.
	orderID, err := shop.PlaceOrder(ctx, db.Pool, client, "ada@example.com", 2500)
	if err != nil {
		t.Fatal(err)
	}
	job, args := jobqueuetest.RequireEnqueued[shop.Receipt](t, client, db.Pool)
	if args.OrderID != orderID || job.MaxAttempts != 12 {
		t.Fatalf("enqueued %+v for order %d with %d attempts; want order %d and the kind's 12", args, args.OrderID, job.MaxAttempts, orderID)
	}

	worker := proctest.Start(t, proctest.Build(t, "example.com/shop/cmd/shop-worker"), []string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t), "SPOOL_POLL_INTERVAL=100ms",
		"SPOOL_WORKER_ID=shop-1"})
	waitReceipt(t, db, orderID)

	// The stock API accepts the kind the shop's worker published.
	addr := proctest.FreeAddr(t)
	proctest.Start(t, buildStockAPI(t), []string{"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_HTTP_ADDR=" + addr,
		"SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t), "SPOOL_AUTH_DISABLED=true", "SPOOL_DRAIN_DELAY=0s"})
	base := "http://" + addr
	proctest.Eventually(t, 20*time.Second, "the stock API to answer", func() bool {
		code, _ := post(base+"/v1/kinds", "")
		return code == http.StatusMethodNotAllowed
	})
	var second int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO orders (email, total_cents) VALUES ('bob@example.com', 100) RETURNING id`).Scan(&second); err != nil {
		t.Fatal(err)
	}
	code, body := post(base+"/v1/jobs", `{"type":"shop.receipt","payload":{"order_id":`+jsonInt(second)+`,"email":"bob@example.com"}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST a shop.receipt job to the stock API: %d %s", code, body)
	}
	waitReceipt(t, db, second)

	// Strict: unknown fields, wrong types and values outside the schema are
	// refused with the field, and nothing is written.
	before := jobs(t, db)
	for payload, field := range map[string]string{
		`{"order_id":1,"email":"bob@example.com","coupon":"x"}`: "payload.coupon",
		`{"order_id":"1","email":"bob@example.com"}`:            "payload.order_id",
		`{"order_id":0,"email":"bob@example.com"}`:              "payload.order_id",
		`{"order_id":1,"email":"not an address"}`:               "payload.email",
		`{"email":"bob@example.com"}`:                           "payload.order_id",
	} {
		code, body := post(base+"/v1/jobs", `{"type":"shop.receipt","payload":`+payload+`}`)
		var e struct{ Field string }
		_ = json.Unmarshal([]byte(body), &e)
		if code != http.StatusUnprocessableEntity || e.Field != field {
			t.Errorf("payload %s: %d %s; want 422 naming %s", payload, code, body, field)
		}
	}
	if code, body := post(base+"/v1/jobs", `{"type":"shop.unheard_of"}`); code != http.StatusUnprocessableEntity || !strings.Contains(body, "shop.receipt") {
		t.Errorf("a kind nobody published: %d %s; want 422 listing the known kinds", code, body)
	}
	if after := jobs(t, db); after != before {
		t.Errorf("refused requests wrote jobs: %d before, %d after", before, after)
	}
	worker.Signal(syscall.SIGTERM)
	if code, ok := worker.Wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("shop-worker exit %d (in time: %v) after SIGTERM, want 0", code, ok)
	}
}

func waitReceipt(t *testing.T, db *pgtest.DB, orderID int64) {
	t.Helper()
	proctest.Eventually(t, 20*time.Second, "the receipt of the order", func() bool {
		var n int
		_ = db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM receipts WHERE order_id = $1`, orderID).Scan(&n)
		return n == 1
	})
}

func jobs(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func post(url, body string) (int, string) {
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// buildStockAPI builds the stock spool-api from the Spool checkout this
// module replaces github.com/spoolq/spool with.
func buildStockAPI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "spool-api")
	cmd := exec.Command("go", "build", "-o", bin, "./services/api")
	cmd.Dir = filepath.Join("..", "..", "..")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the stock spool-api: %v\n%s", err, out)
	}
	return bin
}

func TestMain(m *testing.M) { proctest.Main(m) }
