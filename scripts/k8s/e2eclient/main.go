// Command e2eclient is the load generator and checker behind
// scripts/k8s/e2e.sh (make e2e-k8s). It talks to the Spool API (enqueue,
// list, stats) and to Prometheus' HTTP API, and reads the pod watch stream,
// container logs and containerd exit events the script collects.
//
//	e2eclient enqueue -api URL -token T -n 5000 ...   enqueue a wave of noop/sleep jobs
//	e2eclient stats   -api URL -token T               one line: counts by status
//	e2eclient wait    -api URL -token T -total N      until N jobs exist and none is unfinished
//	e2eclient jobs    -api URL -token T ...           every job completed, reruns explained
//	e2eclient pods    -watch FILE -logs DIR ...       exit codes, grace periods, clean-shutdown logs
//	e2eclient metrics -prom URL -jobs FILE ...        Prometheus series per pod against the database
//	e2eclient http    -api URL -receiver URL ...      http jobs to the webhook receiver, signatures, 422s, a custom kind
//	e2eclient dns     -listen ADDR -kubectl PATH      Service names for pods (the local cluster has no cluster DNS)
//
// Every check prints "ok: ..." or "FAIL: ..."; the exit status is 1 when any
// check failed, 2 on a usage or I/O error.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func([]string) error{
		"enqueue": cmdEnqueue,
		"stats":   cmdStats,
		"wait":    cmdWait,
		"jobs":    cmdJobs,
		"pods":    cmdPods,
		"metrics": cmdMetrics,
		"http":    cmdHTTP,
		"dns":     cmdDNS,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "e2eclient %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	if failures > 0 {
		fmt.Fprintf(os.Stderr, "e2eclient %s: %d check(s) failed\n", os.Args[1], failures)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: e2eclient enqueue|stats|wait|jobs|pods|metrics|http|dns [flags] (-h for flags)")
	os.Exit(2)
}

var failures int

func ok(format string, a ...any) { fmt.Printf("  ok: "+format+"\n", a...) }
func fail(format string, a ...any) {
	failures++
	fmt.Printf("  FAIL: "+format+"\n", a...)
}
func info(format string, a ...any) { fmt.Printf("  "+format+"\n", a...) }

// check reports cond as ok or FAIL with the same message.
func check(cond bool, format string, a ...any) {
	if cond {
		ok(format, a...)
	} else {
		fail(format, a...)
	}
}

// apiFlags are the flags of every subcommand that calls the Spool API.
type apiFlags struct {
	url     string
	token   string
	timeout time.Duration
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api", "", "base URL of the Spool API, e.g. http://10.96.0.20:8080")
	fs.StringVar(&a.token, "token", os.Getenv("SPOOL_TOKEN"), "bearer token (default $SPOOL_TOKEN)")
	fs.DurationVar(&a.timeout, "request-timeout", 30*time.Second, "timeout of one HTTP request")
}

func (a *apiFlags) client() (*apiClient, error) {
	if a.url == "" {
		return nil, fmt.Errorf("-api is required")
	}
	return &apiClient{base: strings.TrimRight(a.url, "/"), token: a.token, http: &http.Client{Timeout: a.timeout}}, nil
}

type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// httpError is a response with an unexpected status.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// do sends a request and decodes a 2xx JSON answer into out.
func (c *apiClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // the API requires it of every unsafe method
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &httpError{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// statusCounts is GET /v1/stats summed over queues.
func (c *apiClient) statusCounts() (map[string]int64, error) {
	var st struct {
		Queues map[string]struct {
			Counts map[string]int64 `json:"counts"`
		} `json:"queues"`
	}
	if err := c.do(http.MethodGet, "/v1/stats", nil, &st); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, q := range st.Queues {
		for s, n := range q.Counts {
			out[s] += n
		}
	}
	return out, nil
}

var statusOrder = []string{"pending", "running", "retrying", "blocked", "completed", "dead", "cancelled"}

func formatCounts(m map[string]int64) string {
	var parts []string
	var total int64
	for _, s := range statusOrder {
		parts = append(parts, fmt.Sprintf("%s=%d", s, m[s]))
		total += m[s]
	}
	return fmt.Sprintf("total=%d %s", total, strings.Join(parts, " "))
}

func unfinished(m map[string]int64) int64 {
	return m["pending"] + m["running"] + m["retrying"] + m["blocked"]
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// cmdStats prints one line of counts; with -require-unfinished it fails
// when nothing is left to run (the script's "the queue is still busy" guard).
func cmdStats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	requireBusy := fs.Bool("require-unfinished", false, "exit 1 when no job is pending, running or retrying")
	fs.Parse(args)
	c, err := a.client()
	if err != nil {
		return err
	}
	m, err := c.statusCounts()
	if err != nil {
		return err
	}
	fmt.Println(formatCounts(m))
	if *requireBusy && unfinished(m) == 0 {
		failures++
	}
	return nil
}

// cmdWait polls /v1/stats until at least -total jobs exist and none is
// unfinished, printing progress every -every.
func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	want := fs.Int64("total", 0, "jobs that must exist")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	every := fs.Duration("every", 10*time.Second, "progress line interval")
	fs.Parse(args)
	c, err := a.client()
	if err != nil {
		return err
	}
	start := time.Now()
	var last time.Time
	var lastErr error
	for time.Since(start) < *timeout {
		m, err := c.statusCounts()
		if err != nil {
			lastErr = err // the API may be rolling; keep trying until the deadline
		} else {
			if total(m) >= *want && unfinished(m) == 0 {
				fmt.Printf("  all jobs finished after %.1fs: %s\n", time.Since(start).Seconds(), formatCounts(m))
				return nil
			}
			if time.Since(last) >= *every {
				fmt.Printf("  [%5.0fs] %s\n", time.Since(start).Seconds(), formatCounts(m))
				last = time.Now()
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	fail("jobs still unfinished after %s (last error: %v)", *timeout, lastErr)
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
