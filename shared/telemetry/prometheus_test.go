package telemetry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// TestPrometheusScrapesServices runs a real Prometheus (Debian's package)
// against the API and a worker built from source, with Spool's rules
// loaded, and checks through Prometheus' query API that the poll and
// outcome series exist and move as jobs run. Along the way: promtool check
// metrics passes on both services' output, the documented metric types
// match the exported ones, every rule evaluates cleanly (SpoolJobsDead
// fires for the job that died), and every Grafana panel's query runs.
func TestPrometheusScrapesServices(t *testing.T) {
	promBin := proctest.LookPath(t, "prometheus", "Prometheus scrape test skipped: no prometheus binary (apt-get install prometheus)")
	t.Parallel()
	db := pgtest.New(t)
	// A destination for an http job, so that the http kind's series exist.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(hook.Close)
	apiHTTP, apiAdmin, workerAdmin := proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)
	api := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/api"), []string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_HTTP_ADDR=" + apiHTTP, "SPOOL_ADMIN_ADDR=" + apiAdmin,
		"SPOOL_AUTH_DISABLED=true", "SPOOL_STATS_INTERVAL=1s", "SPOOL_DRAIN_DELAY=0s", "SPOOL_LOG_LEVEL=warn",
		"SPOOL_OPEN_KINDS=nobody.runs.this",
	})
	worker := proctest.Start(t, proctest.Build(t, "github.com/spoolq/spool/services/worker"), []string{
		"SPOOL_DATABASE_URL=" + db.URL, "SPOOL_ADMIN_ADDR=" + workerAdmin, "SPOOL_WORKER_ID=w1",
		"SPOOL_POLL_INTERVAL=200ms", "SPOOL_BACKOFF_BASE=50ms", "SPOOL_BACKOFF_MAX=100ms", "SPOOL_LOG_LEVEL=warn",
		"SPOOL_HTTP_ALLOWED_HOSTS=127.0.0.1/32",
	})
	for _, addr := range []string{apiAdmin, workerAdmin} {
		proctest.Eventually(t, 30*time.Second, addr+"/readyz", func() bool { return httpStatus("http://"+addr+"/readyz") == 200 })
	}
	proctest.Eventually(t, 10*time.Second, "the API to listen", func() bool { return httpStatus("http://"+apiHTTP+"/v1/stats") == 200 })

	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: spool-api
    static_configs: [{targets: [%q]}]
  - job_name: spool-worker
    static_configs: [{targets: [%q]}]
`, rules, apiAdmin, workerAdmin)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := proctest.FreeAddr(t)
	prom := proctest.Start(t, promBin, nil, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	p := promAPI{t: t, base: "http://" + promAddr}
	proctest.Eventually(t, 30*time.Second, "Prometheus to be ready", func() bool { return httpStatus(p.base+"/-/ready") == 200 })
	defer func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s\napi:\n%s\nworker:\n%s", prom.Output(), api.Output(), worker.Output())
		}
	}()

	// Before any job: both targets up, the worker's poll series present
	// (all three results exist from the start), and the outcome series of
	// every registered type present at zero (created when the worker starts,
	// so increase() sees the first job).
	proctest.Eventually(t, 30*time.Second, "both targets scraped and polls recorded", func() bool {
		return p.value(`count(up == 1)`) == 2 && p.value(`count(spool_worker_polls_total{job="spool-worker"})`) == 3
	})
	polls0 := p.value(`sum(spool_worker_polls_total{job="spool-worker"})`)
	if n, sum := len(p.query(`spool_jobs_processed_total{outcome="completed"}`)), p.value(`sum(spool_jobs_processed_total{outcome="completed"})`); n == 0 || sum != 0 {
		t.Fatalf("before any job ran: %d completed series summing to %v, want them present at 0", n, sum)
	}

	// Jobs: noop ones, sleeps under a concurrency limit of one (throttled
	// claims), and one that fails twice and dies.
	apiCall(t, "PUT", "http://"+apiHTTP+"/v1/limits/type/sleep", `{"max_running": 1}`)
	time.Sleep(2500 * time.Millisecond) // workers reload limits every 2s
	jobs := []string{`{"type":"fail","payload":{"message":"boom"},"max_attempts":2}`}
	for range 3 {
		jobs = append(jobs, `{"type":"sleep","payload":{"ms":300}}`)
	}
	for range 20 {
		jobs = append(jobs, `{"type":"noop"}`)
	}
	jobs = append(jobs, `{"type":"http","payload":{"url":"`+hook.URL+`/hook"}}`)
	apiCall(t, "POST", "http://"+apiHTTP+"/v1/jobs/batch", `{"jobs":[`+strings.Join(jobs, ",")+`]}`)
	proctest.Eventually(t, 60*time.Second, "24 completed jobs and a dead one in Prometheus", func() bool {
		return p.value(`sum(spool_jobs_processed_total{outcome="completed"})`) >= 24 &&
			p.value(`sum(spool_jobs_processed_total{type="fail", outcome="dead"})`) == 1
	})
	if got := p.value(`sum(spool_worker_polls_total{job="spool-worker"})`); got <= polls0 {
		t.Errorf("spool_worker_polls_total: %v after the jobs, %v before; want an increase", got, polls0)
	}
	if got := p.value(`sum(spool_worker_polls_total{result="jobs"})`); got < 1 {
		t.Errorf(`spool_worker_polls_total{result="jobs"} = %v, want at least 1`, got)
	}
	if got := p.value(`sum(spool_jobs_processed_total{type="fail", outcome="retried"})`); got != 1 {
		t.Errorf(`retried fail jobs = %v, want 1`, got)
	}

	// More jobs: the series move.
	completed := p.value(`sum(spool_jobs_processed_total{outcome="completed"})`)
	polls1 := p.value(`sum(spool_worker_polls_total{job="spool-worker"})`)
	batch := strings.Repeat(`{"type":"noop"},`, 10)
	apiCall(t, "POST", "http://"+apiHTTP+"/v1/jobs/batch", `{"jobs":[`+strings.TrimSuffix(batch, ",")+`]}`)
	proctest.Eventually(t, 30*time.Second, "10 more completed jobs in Prometheus", func() bool {
		return p.value(`sum(spool_jobs_processed_total{outcome="completed"})`) >= completed+10
	})
	if got := p.value(`sum(spool_worker_polls_total{job="spool-worker"})`); got <= polls1 {
		t.Errorf("spool_worker_polls_total did not move with the second batch: %v, then %v", polls1, got)
	}
	if got := p.value(`sum(spool_jobs_enqueued_total{type="noop"})`); got != 30 {
		t.Errorf("spool_jobs_enqueued_total{type=noop} = %v, want 30", got)
	}
	// A job of a kind no worker runs (accepted as an open kind) is counted
	// as unserved; the kinds the worker runs are not.
	apiCall(t, "POST", "http://"+apiHTTP+"/v1/jobs", `{"type":"nobody.runs.this"}`)
	proctest.Eventually(t, 30*time.Second, "the unserved job in Prometheus", func() bool {
		return p.value(`max(spool_unserved_jobs{type="nobody.runs.this"})`) == 1
	})
	if n := len(p.query(`spool_unserved_jobs{type!="nobody.runs.this"}`)); n != 0 {
		t.Errorf("%d unserved series for kinds the worker runs, want none", n)
	}

	t.Run("exposition", func(t *testing.T) {
		checkExposition(t, "http://"+apiAdmin+"/metrics", "http://"+workerAdmin+"/metrics")
	})
	t.Run("rules", func(t *testing.T) { checkRules(t, p) })
	t.Run("dashboard queries", func(t *testing.T) { checkDashboardQueries(t, p) })
}

// checkExposition runs promtool check metrics on each output and compares
// the exported types with docs/monitoring.md.
func checkExposition(t *testing.T, urls ...string) {
	documented := documentedMetrics(t)
	exported := map[string]string{}
	typeLine := regexp.MustCompile(`^# TYPE (spool_[a-z0-9_]+) ([a-z]+)$`)
	promtool, _ := exec.LookPath("promtool")
	if promtool == "" {
		if proctest.InCI() {
			t.Error("promtool not installed (apt-get install prometheus): check metrics cannot run, and CI is set")
		} else {
			t.Log("promtool not installed: check metrics skipped")
		}
	}
	for _, u := range urls {
		body := httpBody(t, u)
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if m := typeLine.FindStringSubmatch(sc.Text()); m != nil {
				exported[m[1]] = m[2]
			}
		}
		if promtool == "" {
			continue
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics < %s: %v\n%s", u, err, out)
		}
	}
	for name, typ := range exported {
		if documented[name] != typ {
			t.Errorf("%s is a %s; docs/monitoring.md says %q", name, typ, documented[name])
		}
	}
	// Everything documented was exported. spool_jobs_rescued_total is, at
	// zero (the worker creates every type's series at start), though no
	// worker is lost here: shared/jobqueue's TestRescueCountsRescuedJobs
	// checks that rescues move it.
	for name := range documented {
		if _, ok := exported[name]; !ok {
			t.Errorf("%s is documented but neither service exported it in this run", name)
		}
	}
}

// checkRules waits until Prometheus has evaluated every rule of the file,
// requires all of them healthy, and SpoolJobsDead firing for the dead job.
func checkRules(t *testing.T, p promAPI) {
	type ruleState struct {
		Name, Health, LastError, Type string
		LastEvaluation                time.Time
	}
	var rules []ruleState
	proctest.Eventually(t, 30*time.Second, "every rule evaluated", func() bool {
		var resp struct {
			Data struct {
				Groups []struct{ Rules []ruleState } `json:"groups"`
			} `json:"data"`
		}
		p.get("/api/v1/rules", nil, &resp)
		rules = rules[:0]
		for _, g := range resp.Data.Groups {
			rules = append(rules, g.Rules...)
		}
		return len(rules) > 0 && !slices.ContainsFunc(rules, func(r ruleState) bool { return r.LastEvaluation.Year() < 2000 })
	})
	if want := len(loadRules(t)); len(rules) != want {
		t.Errorf("Prometheus loaded %d rules, the file has %d", len(rules), want)
	}
	for _, r := range rules {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
	}
	for _, rec := range []string{"spool:queue_jobs:max", "spool:queue_oldest_due_age_seconds:max", "spool:jobs_processed:rate5m", "spool:worker_polls:rate5m"} {
		if len(p.query(rec)) == 0 {
			t.Errorf("recording rule %s has no series", rec)
		}
	}
	proctest.Eventually(t, 20*time.Second, "SpoolJobsDead to fire for type fail", func() bool {
		return p.value(`count(ALERTS{alertname="SpoolJobsDead", alertstate="firing", type="fail"})`) == 1
	})
	for _, s := range p.query(`ALERTS{alertstate="firing"}`) {
		if s.Metric["alertname"] != "SpoolJobsDead" {
			t.Errorf("unexpected alert firing: %v", s.Metric)
		}
	}
}

// checkDashboardQueries runs every Grafana panel query; the panels the
// issue asks for must have data.
func checkDashboardQueries(t *testing.T, p promAPI) {
	mustHaveData := map[string]bool{
		"Jobs finished /s/A": true, "Backlog/A": true, "Workers up/A": true,
		"Completed jobs /s by type/A": true, "Outcomes /s/A": true, "Enqueued jobs /s by type/A": true,
		"Queue lag (run_at to start)/B": true, "Job duration/B": true, "Oldest due job's wait/A": true,
		"Depth by queue and status/A": true, "Claim queries /s per replica/A": true, "Running jobs per replica/A": true,
		"Requests /s by route and code/A": true, "Connections per process/A": true, "Running versions/A": true,
	}
	queries := dashboardQueries(t)
	for name := range mustHaveData {
		if _, ok := queries[name]; !ok {
			t.Errorf("no dashboard query %q (renamed?)", name)
		}
	}
	var empty []string
	for name, q := range queries {
		samples, err := p.tryQuery(q)
		if err != nil {
			t.Errorf("panel %s: %v\n%s", name, err, q)
			continue
		}
		if len(samples) == 0 {
			empty = append(empty, name)
			if mustHaveData[name] {
				t.Errorf("panel %s has no data: %s", name, q)
			}
		}
	}
	slices.Sort(empty)
	t.Logf("%d dashboard queries ran; without data in this run: %v", len(queries), empty)
}

// promAPI queries a Prometheus server's HTTP API.
type promAPI struct {
	t    *testing.T
	base string
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p promAPI) get(path string, q url.Values, v any) {
	p.t.Helper()
	u := p.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	if err := json.Unmarshal(httpBody(p.t, u), v); err != nil {
		p.t.Fatalf("GET %s: %v", u, err)
	}
}

func (p promAPI) tryQuery(q string) ([]sample, error) {
	res, err := http.Get(p.base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", resp.Error)
	}
	var out []sample
	if resp.Data.ResultType == "vector" {
		if err := json.Unmarshal(resp.Data.Result, &out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p promAPI) query(q string) []sample {
	p.t.Helper()
	s, err := p.tryQuery(q)
	if err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return s
}

// value is the single value q returns, or -1 when it returns nothing.
func (p promAPI) value(q string) float64 {
	p.t.Helper()
	s := p.query(q)
	if len(s) == 0 {
		return -1
	}
	if len(s) > 1 {
		p.t.Fatalf("%s: %d series, want one", q, len(s))
	}
	str, _ := s[0].Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		p.t.Fatalf("%s: value %v", q, s[0].Value)
	}
	return v
}

func httpStatus(u string) int {
	res, err := http.Get(u)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func httpBody(t *testing.T, u string) []byte {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v\n%s", u, res.StatusCode, err, b)
	}
	return b
}

func apiCall(t *testing.T, method, u, body string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, u, res.StatusCode, b)
	}
}
