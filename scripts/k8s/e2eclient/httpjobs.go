package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// receiverStats is the receiver's GET /stats (scripts/k8s/receiver).
type receiverStats struct {
	Requests int            `json:"requests"`
	SigOK    int            `json:"sig_ok"`
	SigBad   int            `json:"sig_bad"`
	Unsigned int            `json:"unsigned"`
	ByID     map[string]int `json:"by_id"`
	Records  []struct {
		ID     string `json:"id"`
		Method string `json:"method"`
		Path   string `json:"path"`
		SigOK  bool   `json:"sig_ok"`
		Reason string `json:"reason"`
	} `json:"records"`
}

// jobDetail is GET /v1/jobs/{id}'s job, with its result.
type jobDetail struct {
	apiJob
	Queue     string          `json:"queue"`
	LastError *string         `json:"last_error"`
	Result    json.RawMessage `json:"result"`
}

// httpReport is written to -out.
type httpReport struct {
	HTTPJobs     []int64        `json:"http_jobs"`
	ByStatus     map[string]int `json:"by_status"`
	ByWorker     map[string]int `json:"by_worker"`
	Deliveries   int            `json:"deliveries"` // requests the receiver got for these jobs
	Duplicates   map[string]int `json:"duplicates"` // webhook-id -> requests, when more than one
	SigOK        int            `json:"sig_ok"`
	Refused      map[string]int `json:"refused"` // destination -> HTTP status of its POST /v1/jobs
	ShopJob      int64          `json:"shop_job,omitempty"`
	ShopStatus   string         `json:"shop_status,omitempty"`
	ShopWorker   string         `json:"shop_worker,omitempty"`
	ElapsedSecs  float64        `json:"elapsed_seconds"`
	ReceiverSeen *receiverStats `json:"receiver"`
}

// cmdHTTP is the http-kind phase: -n http jobs through the API to the
// receiver, destinations the allow list does not permit refused with 422,
// optionally a custom worker's kind (shop.receipt) that must complete on
// one of -shop-pods; then every job's outcome against what the receiver
// recorded.
func cmdHTTP(args []string) error {
	fs := flag.NewFlagSet("http", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	recv := fs.String("receiver", "", "base URL of the receiver Service, as the workers reach it (and this client: /stats)")
	n := fs.Int("n", 20, "http jobs to enqueue")
	refuse := fs.String("refuse", "", "comma-separated destination URLs the API must refuse with 422")
	keyPrefix := fs.String("key-prefix", "", "idempotency key prefix (unique per run)")
	shopOrder := fs.Int64("shop-order", 0, "order id for a shop.receipt job (0: none)")
	shopEmail := fs.String("shop-email", "e2e@example.com", "the order's email")
	shopQueue := fs.String("shop-queue", "shop", "queue of the shop.receipt job (served by the custom pool only)")
	httpQueue := fs.String("http-queue", "", "queue of the http jobs (empty: default); with -shop-pods, every http job must run on the custom pool")
	shopPods := fs.String("shop-pods", "", "comma-separated pod names of the custom worker pool: the shop.receipt job must complete on one")
	timeout := fs.Duration("timeout", 3*time.Minute, "wait this long for the jobs")
	out := fs.String("out", "", "write the report as JSON here")
	fs.Parse(args)
	c, err := a.client()
	if err != nil {
		return err
	}
	if *recv == "" || *keyPrefix == "" {
		return errors.New("-receiver and -key-prefix are required")
	}
	base := strings.TrimRight(*recv, "/")
	start := time.Now()
	rep := httpReport{ByStatus: map[string]int{}, ByWorker: map[string]int{}, Duplicates: map[string]int{}, Refused: map[string]int{}}

	// Destinations outside the allow list: 422 at enqueue, no job.
	for _, u := range splitList(*refuse) {
		var res struct{}
		err := c.do(http.MethodPost, "/v1/jobs", map[string]any{"type": "http", "payload": map[string]any{"url": u, "method": "POST"}}, &res)
		var he *httpError
		switch {
		case err == nil:
			rep.Refused[u] = 201
			fail("POST /v1/jobs http to %s (not in the allow list) was accepted, want 422", u)
		case errors.As(err, &he):
			rep.Refused[u] = he.status
			check(he.status == http.StatusUnprocessableEntity, "POST /v1/jobs http to %s (not in the allow list): HTTP %d, want 422 (%.160s)", u, he.status, he.body)
		default:
			return fmt.Errorf("POST /v1/jobs (refused destination %s): %w", u, err)
		}
	}

	// A request with a wrong signature straight to the receiver: it must
	// count it as bad (the verifier really verifies).
	ctl := "e2e_bad_signature_control_" + *keyPrefix // unique per run
	req, _ := http.NewRequest(http.MethodPost, base+"/control", strings.NewReader(`{"control":true}`))
	req.Header.Set("webhook-id", ctl)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("webhook-signature", "v1,"+strings.Repeat("A", 43)+"=")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		return fmt.Errorf("control request to the receiver: %w", err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// The http jobs, one at a time through POST /v1/jobs.
	for i := 0; i < *n; i++ {
		body := map[string]any{
			"type": "http",
			"payload": map[string]any{
				"url": fmt.Sprintf("%s/hook/%d", base, i), "method": "POST",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    map[string]any{"e2e": *keyPrefix, "n": i}, "timeout": "10s",
			},
			"idempotency_key": fmt.Sprintf("%s-http-%d", *keyPrefix, i),
		}
		if *httpQueue != "" {
			body["queue"] = *httpQueue
		}
		var res struct {
			Job jobDetail `json:"job"`
		}
		if err := c.do(http.MethodPost, "/v1/jobs", body, &res); err != nil {
			return fmt.Errorf("POST /v1/jobs http %d: %w", i, err)
		}
		rep.HTTPJobs = append(rep.HTTPJobs, res.Job.ID)
	}
	info("enqueued %d http jobs to %s/hook/N through POST /v1/jobs (ids %d-%d)", *n, base, rep.HTTPJobs[0], rep.HTTPJobs[len(rep.HTTPJobs)-1])

	// The custom worker's kind: the API knows it once the pool published
	// it (GET /v1/kinds), so a 422 "unknown type" is retried for a while.
	if *shopOrder > 0 {
		body := map[string]any{"type": "shop.receipt", "queue": *shopQueue,
			"payload":         map[string]any{"order_id": *shopOrder, "email": *shopEmail},
			"idempotency_key": *keyPrefix + "-shop"}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var res struct {
				Job jobDetail `json:"job"`
			}
			err := c.do(http.MethodPost, "/v1/jobs", body, &res)
			if err == nil {
				rep.ShopJob = res.Job.ID
				break
			}
			var he *httpError
			if !errors.As(err, &he) || he.status != http.StatusUnprocessableEntity || time.Now().After(deadline) {
				return fmt.Errorf("POST /v1/jobs shop.receipt: %w", err)
			}
			time.Sleep(time.Second)
		}
		info("enqueued shop.receipt job %d (order %d, queue %s)", rep.ShopJob, *shopOrder, *shopQueue)
	}

	// Wait for every job to finish.
	all := append([]int64(nil), rep.HTTPJobs...)
	if rep.ShopJob > 0 {
		all = append(all, rep.ShopJob)
	}
	final := map[int64]*jobDetail{}
	deadline := time.Now().Add(*timeout)
	for len(final) < len(all) && time.Now().Before(deadline) {
		for _, id := range all {
			if final[id] != nil {
				continue
			}
			var res struct {
				Job jobDetail `json:"job"`
			}
			if err := c.do(http.MethodGet, "/v1/jobs/"+strconv.FormatInt(id, 10), nil, &res); err != nil {
				continue // the API may be busy; the deadline bounds this
			}
			switch res.Job.Status {
			case "completed", "dead", "cancelled":
				j := res.Job
				final[id] = &j
			}
		}
		if len(final) < len(all) {
			time.Sleep(500 * time.Millisecond)
		}
	}
	rep.ElapsedSecs = time.Since(start).Seconds()

	var st receiverStats
	if err := getJSON(base+"/stats", &st); err != nil {
		return fmt.Errorf("receiver /stats: %w", err)
	}
	rep.ReceiverSeen = &st

	// The http jobs: completed, result status 200, one signed delivery each.
	var notDone, not200, missing, badSig []string
	wantIDs := map[string]int64{}
	for i, id := range rep.HTTPJobs {
		wantIDs[fmt.Sprintf("spool_job_%d", id)] = int64(i)
		j := final[id]
		if j == nil {
			notDone = append(notDone, fmt.Sprintf("%d:unfinished", id))
			continue
		}
		rep.ByStatus[j.Status]++
		if j.WorkerID != nil {
			rep.ByWorker[*j.WorkerID]++
		}
		if j.Status != "completed" {
			le := ""
			if j.LastError != nil {
				le = *j.LastError
			}
			notDone = append(notDone, fmt.Sprintf("%d:%s(%.80s)", id, j.Status, le))
			continue
		}
		var res struct {
			Status int `json:"status"`
		}
		if json.Unmarshal(j.Result, &res) != nil || res.Status != 200 {
			not200 = append(not200, fmt.Sprintf("%d:%.60s", id, j.Result))
		}
	}
	sigOK := map[string]int{}
	for _, r := range st.Records {
		if _, ok := wantIDs[r.ID]; !ok {
			continue
		}
		rep.Deliveries++
		if r.SigOK {
			sigOK[r.ID]++
			rep.SigOK++
		} else {
			badSig = append(badSig, fmt.Sprintf("%s(%s)", r.ID, r.Reason))
		}
		if want := fmt.Sprintf("/hook/%d", wantIDs[r.ID]); r.Path != want {
			badSig = append(badSig, fmt.Sprintf("%s: path %s, want %s", r.ID, r.Path, want))
		}
	}
	for id := range wantIDs {
		switch k := st.ByID[id]; {
		case k == 0:
			missing = append(missing, id)
		case k > 1:
			rep.Duplicates[id] = k
		}
	}
	sort.Strings(missing)
	check(len(notDone) == 0, "%d http jobs completed (of %d enqueued) in %.1fs%s", rep.ByStatus["completed"], len(rep.HTTPJobs), rep.ElapsedSecs, failList("not completed", notDone))
	check(len(not200) == 0, "every http job's result holds the receiver's status 200%s", failList("other result", not200))
	check(len(missing) == 0, "the receiver got a request for every job's webhook-id (spool_job_<id>): %d of %d%s", len(wantIDs)-len(missing), len(wantIDs), failList("never received", missing))
	if len(rep.Duplicates) == 0 {
		ok("each webhook-id received exactly once (%d requests for %d jobs)", rep.Deliveries, len(wantIDs))
	} else {
		info("webhook-ids received more than once (retries; at-least-once delivery): %v", rep.Duplicates)
		ok("each webhook-id received at least once (%d requests for %d jobs, %d id(s) more than once)", rep.Deliveries, len(wantIDs), len(rep.Duplicates))
	}
	check(len(badSig) == 0 && rep.SigOK == rep.Deliveries && rep.Deliveries > 0,
		"every request of these jobs carried a valid Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature v1 HMAC-SHA256 with the Secret's key) and its own path: %d of %d%s", rep.SigOK, rep.Deliveries, failList("bad", badSig))
	ctlBad := 0
	for _, r := range st.Records {
		if r.ID == ctl && !r.SigOK {
			ctlBad++
		}
	}
	check(ctlBad == 1, "the receiver refused the signature of the control request with a wrong signature (%d of 1 counted bad)", ctlBad)
	workers := sortedKeys(rep.ByWorker)
	parts := make([]string, 0, len(workers))
	for _, w := range workers {
		parts = append(parts, fmt.Sprintf("%s=%d", w, rep.ByWorker[w]))
	}
	info("http jobs by worker pod: %s", strings.Join(parts, " "))
	if *httpQueue != "" && *shopPods != "" {
		var elsewhere []string
		for _, w := range workers {
			if !slices.Contains(splitList(*shopPods), w) {
				elsewhere = append(elsewhere, w)
			}
		}
		check(len(elsewhere) == 0 && len(workers) > 0, "every http job (queue %s) ran on the custom pool's image (%s)%s", *httpQueue, *shopPods, failList("other pods", elsewhere))
	}
	info("receiver totals: %d requests, %d signature ok, %d bad (%d unsigned)", st.Requests, st.SigOK, st.SigBad, st.Unsigned)

	if rep.ShopJob > 0 {
		j := final[rep.ShopJob]
		switch {
		case j == nil:
			fail("shop.receipt job %d did not finish within %s", rep.ShopJob, *timeout)
		default:
			rep.ShopStatus = j.Status
			if j.WorkerID != nil {
				rep.ShopWorker = *j.WorkerID
			}
			onPool := false
			for _, p := range splitList(*shopPods) {
				onPool = onPool || p == rep.ShopWorker
			}
			check(j.Status == "completed" && onPool, "shop.receipt job %d (queue %s): %s on %q, want completed on a pod of the custom pool (%s)", rep.ShopJob, j.Queue, j.Status, rep.ShopWorker, *shopPods)
		}
	}
	if *out != "" {
		return writeJSON(*out, rep)
	}
	return nil
}

func getJSON(url string, v any) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}
