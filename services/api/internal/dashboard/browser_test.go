package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

const testToken = "dashboard-test-token-0123456789abcdef"

// TestBrowserRetriesDeadJob drives the dashboard of the real spool-api
// binary in headless Chromium: the page loads without a token, the user
// types one in, the dead-jobs view lists a seeded dead job, and clicking its
// Retry button puts the job back to pending in the database. Screenshots go
// to t.TempDir() and, when SPOOL_SCREENSHOT_DIR is set, there as well.
func TestBrowserRetriesDeadJob(t *testing.T) {
	chromium, err := findChromium()
	if err != nil {
		proctest.Unavailable(t, "headless browser test skipped: no Chromium (apt-get install chromium, or set SPOOL_CHROMIUM)")
	}
	t.Parallel()
	db := pgtest.New(t)
	dead, doomed := seed(t, db)

	addr := proctest.FreeAddr(t)
	api := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), []string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_HTTP_ADDR=" + addr, "SPOOL_ADMIN_ADDR=" + proctest.FreeAddr(t),
		"SPOOL_API_TOKENS=" + testToken + ":rw", "SPOOL_DRAIN_DELAY=0s", "SPOOL_LOG_LEVEL=warn",
	})
	base := "http://" + addr
	proctest.Eventually(t, 30*time.Second, "the API to serve /", func() bool {
		res, err := http.Get(base + "/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	// The page is public, the API behind it is not.
	if res := httpGet(t, base+"/v1/queues"); res != http.StatusUnauthorized {
		t.Fatalf("GET /v1/queues without a token: %d, want 401", res)
	}
	defer func() {
		if t.Failed() {
			t.Logf("spool-api output:\n%s", api.Output())
		}
	}()

	// A schedule and a workflow, made through the API, for their views.
	authed(t, "PUT", base+"/v1/schedules/nightly-report", `{"spec": "0 3 * * *", "timezone": "Europe/Berlin", "type": "noop", "payload": {}}`, nil)
	var wf struct {
		Workflow struct{ ID int64 } `json:"workflow"`
	}
	authed(t, "POST", base+"/v1/workflows", `{"name": "order-42", "steps": [
		{"name": "charge", "type": "noop"},
		{"name": "confirm", "type": "send_email", "queue": "emails", "depends_on": ["charge"],
		 "payload": {"to": "buyer@example.com", "subject": "Thanks", "body": "Your order"}}]}`, &wf)

	b := startBrowser(t, chromium, 1360, 860)
	b.navigate(base + "/#/dead")
	b.waitFor("the page to ask for a token", `document.querySelector('#view h1') && document.querySelector('#view').innerText.includes('token')`, 20*time.Second)

	// Log in the way a user does: type the token and press Save.
	b.click("#token")
	b.typeText(testToken)
	b.click("#token-save")
	retry := fmt.Sprintf(`tr[data-job-id="%d"] button[data-action="retry"]`, dead)
	b.waitFor("the dead job's Retry button", `document.querySelector('`+retry+`')`, 20*time.Second)
	var stored string
	b.eval(`localStorage.getItem('spool.token')`, &stored)
	if stored != testToken {
		t.Errorf("token in localStorage: %q", stored)
	}
	var text string
	b.eval(`document.querySelector('#view').innerText`, &text)
	for _, want := range []string{"Dead jobs", "fail", "card declined: insufficient funds"} {
		if !strings.Contains(text, want) {
			t.Errorf("dead-jobs view lacks %q:\n%s", want, text)
		}
	}
	save(t, "dashboard-dead.png", b.screenshot())

	b.click(retry)
	proctest.Eventually(t, 10*time.Second, fmt.Sprintf("job %d to be pending after the click", dead), func() bool {
		return status(t, db, dead) == jobqueue.StatusPending
	})
	b.waitFor("the confirmation", `document.querySelector('#flash').innerText.includes('is pending again')`, 10*time.Second)
	b.waitFor("the row to leave the dead list", `!document.querySelector('`+retry+`')`, 10*time.Second)

	// Delete takes two clicks; then the job is gone.
	del := fmt.Sprintf(`tr[data-job-id="%d"] button[data-action="delete"]`, doomed)
	b.click(del)
	b.waitFor("the armed Delete button", `document.querySelector('`+del+`').innerText.includes('Click again')`, 5*time.Second)
	if n := jobCount(t, db, doomed); n != 1 {
		t.Fatalf("job %d deleted after one click", doomed)
	}
	b.click(del)
	proctest.Eventually(t, 10*time.Second, fmt.Sprintf("job %d to be deleted after the second click", doomed), func() bool {
		return jobCount(t, db, doomed) == 0
	})
	b.waitFor("the deletion notice", `document.querySelector('#flash').innerText.includes('deleted')`, 10*time.Second)

	// The job's page shows its payload and error history (kept by the retry).
	b.navigate(fmt.Sprintf("%s/#/job/%d", base, dead))
	b.waitFor("the job page", `document.querySelector('#view').innerText.includes('Error history')`, 10*time.Second)
	b.eval(`document.querySelector('#view').innerText`, &text)
	for _, want := range []string{"pending", "insufficient funds", `"message"`, "attempt 1: gateway timeout"} {
		if !strings.Contains(text, want) {
			t.Errorf("job page lacks %q:\n%s", want, text)
		}
	}
	save(t, "dashboard-job.png", b.screenshot())

	// The queues overview, with pause: clicking Pause pauses the queue.
	b.navigate(base + "/#/queues")
	b.waitFor("the queues table", `document.querySelector('tr[data-queue="emails"] button[data-action="pause"]')`, 10*time.Second)
	b.click(`tr[data-queue="emails"] button[data-action="pause"]`)
	b.waitFor("the Resume button", `document.querySelector('tr[data-queue="emails"] button[data-action="resume"]')`, 10*time.Second)
	// No worker runs here, so the waiting jobs' kinds are marked unserved.
	var unserved string
	b.eval(`(document.querySelector('#unserved') || {}).innerText || ''`, &unserved)
	if !strings.Contains(unserved, "send_email") || !strings.Contains(unserved, "no live worker") {
		t.Errorf("queues view's unserved mark = %q, want send_email named", unserved)
	}
	var paused bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT paused FROM spool.spool_queues WHERE name = 'emails'`).Scan(&paused); err != nil || !paused {
		t.Errorf("queue emails paused = %v (%v), want true", paused, err)
	}
	save(t, "dashboard-queues.png", b.screenshot())

	for _, v := range []struct{ view, want string }{
		{"jobs", "send_email"}, {"schedules", "nightly-report"},
		{"workflows", "confirm"}, // the newest step seen
		{fmt.Sprintf("workflow/%d", wf.Workflow.ID), "order-42"},
	} {
		view, want := v.view, v.want
		b.navigate(base + "/#/" + view)
		name := strings.Split(view, "/")[0]
		b.waitFor(view+" view", `document.querySelector('#view').dataset.view === '`+name+`' && document.querySelector('#view').innerText.includes('`+want+`')`, 10*time.Second)
		save(t, "dashboard-"+name+".png", b.screenshot())
	}
	if p := b.problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// seed writes a dead job with two failed attempts, and a few others.
func seed(t *testing.T, db *pgtest.DB) (dead, doomed int64) {
	t.Helper()
	ctx := context.Background()
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The kinds a team's workers would have published: the diagnostic ones
	// and an email kind.
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, sendEmail) error { return nil }, nil)
	if err := client.PublishKinds(ctx, "test", kinds); err != nil {
		t.Fatal(err)
	}
	enqueue := func(p jobqueue.EnqueueParams) int64 {
		r, err := client.Enqueue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return r.Job.ID
	}
	dead = enqueue(jobqueue.EnqueueParams{Kind: "fail", Payload: map[string]string{"message": "card declined: insufficient funds"}, MaxAttempts: 2})
	doomed = enqueue(jobqueue.EnqueueParams{Kind: "fail", Payload: map[string]string{"message": "card declined: insufficient funds"}, MaxAttempts: 2})
	_, err = db.Pool.Exec(ctx, `UPDATE spool.spool_jobs SET status = 'dead', attempts = 2, started_at = now() - interval '1 minute',
		finished_at = now(), last_error = 'card declined: insufficient funds',
		errors = jsonb_build_array(
			jsonb_build_object('attempt', 1, 'error', 'attempt 1: gateway timeout', 'at', now() - interval '1 minute', 'worker_id', 'worker-a'),
			jsonb_build_object('attempt', 2, 'error', 'card declined: insufficient funds', 'at', now(), 'worker_id', 'worker-b'))
		WHERE id IN ($1, $2)`, dead, doomed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		enqueue(jobqueue.EnqueueParams{Kind: "send_email", Queue: "emails",
			Payload: map[string]string{"to": fmt.Sprintf("user%d@example.com", i), "subject": "Welcome", "body": "Hello"}})
	}
	enqueue(jobqueue.EnqueueParams{Kind: "noop", Payload: map[string]any{}, RunAt: time.Now().Add(time.Hour)})
	return dead, doomed
}

func jobCount(t *testing.T, db *pgtest.DB, id int64) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM spool.spool_jobs WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func status(t *testing.T, db *pgtest.DB, id int64) jobqueue.Status {
	t.Helper()
	var s jobqueue.Status
	if err := db.Pool.QueryRow(context.Background(), `SELECT status FROM spool.spool_jobs WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// authed sends a request with the test's token and decodes the answer
// into out (when not nil).
func authed(t *testing.T, method, url, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// save writes a screenshot to the test's temporary directory and, when
// SPOOL_SCREENSHOT_DIR is set, copies it there.
func save(t *testing.T, name string, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("%s: not a PNG (%d bytes)", name, len(png))
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("SPOOL_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s (%d bytes) in %s", name, len(png), strings.Join(dirs, ", "))
}

// sendEmail is a kind a team's worker might run.
type sendEmail struct {
	To      string `json:"to" jsonschema:"format=email"`
	Subject string `json:"subject"`
	Body    string `json:"body,omitempty"`
}

func (sendEmail) Kind() string { return "send_email" }
