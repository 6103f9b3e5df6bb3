package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/examples/orders"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

// The demo is tested as it runs: the stock spool-api and spool-worker
// binaries with SPOOL_DEMO=true, on a database holding Spool's schema and
// the demo's.

type bundle struct {
	db        *pgtest.DB
	client    *jobqueue.Client
	store     *orders.Store
	workerBin string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	db := pgtest.New(t, orders.Migrations())
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{db: db, client: client, store: orders.NewStore(client),
		workerBin: proctest.Build(t, "github.com/spoolq/spool/services/worker")}
}

// startWorker runs one demo worker; extra env entries override defaults.
func (b *bundle) startWorker(t *testing.T, extra ...string) *proctest.Proc {
	t.Helper()
	env := []string{"SPOOL_DATABASE_URL=" + b.db.URL, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t), "SPOOL_DEMO=true",
		"SPOOL_POLL_INTERVAL=200ms", "SPOOL_LOG_LEVEL=debug"}
	p := proctest.Start(t, b.workerBin, append(env, extra...))
	b.waitPublished(t)
	return p
}

// waitPublished waits until a worker has published the demo's kinds.
func (b *bundle) waitPublished(t *testing.T) {
	t.Helper()
	proctest.Eventually(t, 10*time.Second, "the demo's kinds to be published", func() bool {
		kinds, err := b.client.Kinds(context.Background())
		for _, k := range kinds {
			if k.Name == (orders.FailOrder{}).Kind() {
				return err == nil
			}
		}
		return false
	})
}

// startAPI runs the stock API with the demo's routes, auth off, and
// returns its base URL once it answers.
func (b *bundle) startAPI(t *testing.T, extra ...string) (*proctest.Proc, string) {
	t.Helper()
	addr := proctest.FreeAddr(t)
	p := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), append([]string{
		"SPOOL_DATABASE_URL=" + b.db.URL, "SPOOL_HTTP_ADDR=" + addr, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t),
		"SPOOL_AUTH_DISABLED=true", "SPOOL_DRAIN_DELAY=100ms", "SPOOL_LOG_LEVEL=warn", "SPOOL_DEMO=true",
	}, extra...))
	base := "http://" + addr
	proctest.Eventually(t, 20*time.Second, "the API to answer", func() bool {
		res, err := http.Get(base + "/v1/products")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p, base
}

func stopClean(t *testing.T, p *proctest.Proc, within time.Duration) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	code, ok := p.Wait(within)
	if !ok || code != 0 {
		t.Fatalf("exit %d (in time: %v) after SIGTERM, want 0", code, ok)
	}
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := b.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// placeWithRetry posts an order, waiting out Retry-After (with jitter) on
// 429 and 503 as a client should; anything else but 201 fails the test.
func placeWithRetry(t *testing.T, url, body string) {
	for range 200 {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Errorf("place order: %v", err)
			return
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(float64(max(wait, 1)) * (0.5 + rand.Float64()) * float64(time.Second)))
		default:
			t.Errorf("place order: %s", resp.Status)
			return
		}
	}
	t.Error("place order: still refused after 200 tries")
}

func order(email, card string, items ...string) string {
	return fmt.Sprintf(`{"customer_email":%s,"card_number":%s,"items":[%s]}`, str(email), str(card), strings.Join(items, ","))
}

func item(sku string, qty int) string { return fmt.Sprintf(`{"sku":%s,"quantity":%d}`, str(sku), qty) }

// str is s as a JSON string.
func str(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestMain(m *testing.M) { proctest.Main(m) }
