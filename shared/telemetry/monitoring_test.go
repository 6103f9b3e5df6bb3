package telemetry_test

// Checks of the monitoring files against the code, without a database:
// the Grafana dashboard's queries and the rules name only metrics Spool
// exports (or records), every query parses, and docs/monitoring.md lists
// exactly the metrics the code defines. prometheus_test.go runs the same
// queries against a real Prometheus.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/telemetry"
)

var repoRoot = filepath.Join("..", "..")

var (
	rulesFile     = filepath.Join(repoRoot, "helm", "spool", "files", "spool-rules.yaml")
	dashboardFile = filepath.Join(repoRoot, "helm", "spool", "files", "spool-dashboard.json")
	docsFile      = filepath.Join(repoRoot, "docs", "monitoring.md")
)

// describer records the names of the metrics collectors describe, so
// vectors that have no series yet count too.
type describer struct{ names map[string]bool }

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := descName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

type noPool struct{}

func (noPool) Stat() *pgxpool.Stat { return nil }

// metricRegistration finds the Name: "spool_…" of prometheus.*Opts literals
// in the services' own packages, which shared tests cannot import.
var metricRegistration = regexp.MustCompile(`Name:\s*"(spool_[a-z0-9_]+)"`)

// definedMetrics is every spool_* metric name the code defines: the shared
// collectors described in-process, plus names registered in services/.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	d := &describer{names: map[string]bool{}}
	for _, name := range []string{"spool_build_info"} { // NewRegistry's own
		d.names[name] = true
	}
	d.MustRegister(telemetry.NewPoolCollector(noPool{}))
	jobqueue.NewMetrics(d)
	jobqueue.NewQueueGauges(nil, d)
	err := filepath.WalkDir(filepath.Join(repoRoot, "services"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		for _, m := range metricRegistration.FindAllStringSubmatch(string(b), -1) {
			d.names[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !d.names["spool_http_requests_total"] || !d.names["spool_worker_polls_total"] || !d.names["spool_db_pool_max_connections"] {
		t.Fatalf("metric discovery is broken: %v", keys(d.names))
	}
	return d.names
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grafanaVars are the dashboard's variables and what a test substitutes.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$namespace", ".*", "$queue", ".*", "$type", ".*")

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// dashboardQueries returns each panel query with the variables substituted,
// keyed by "panel title/refId".
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			out[p.Title+"/"+tg.RefID] = grafanaVars.Replace(tg.Expr)
		}
	}
	return out
}

// rule is one rule of spool-rules.yaml.
type rule struct{ Record, Alert, Expr string }

var ruleKey = regexp.MustCompile(`^(\s*)(?:- )?(record|alert|expr):\s*(.*)$`)

// loadRules reads the rules of spool-rules.yaml. The main module has no
// YAML library, and the file's shape is ours: "- record:" or "- alert:"
// starts a rule, and "expr:" is a one-line value or a "|" block.
// (prometheus_test.go loads the file into a real Prometheus.)
func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules []rule
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		m := ruleKey.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		switch m[2] {
		case "record":
			rules = append(rules, rule{Record: m[3]})
		case "alert":
			rules = append(rules, rule{Alert: m[3]})
		case "expr":
			if len(rules) == 0 {
				t.Fatalf("%s:%d: expr before any rule", rulesFile, i+1)
			}
			expr := m[3]
			if expr == "|" {
				var block []string
				for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > len(m[1])) {
					i++
					block = append(block, strings.TrimSpace(lines[i]))
				}
				expr = strings.TrimSpace(strings.Join(block, "\n"))
			}
			rules[len(rules)-1].Expr = expr
		}
	}
	if len(rules) < 10 {
		t.Fatalf("%s: found only %d rules", rulesFile, len(rules))
	}
	for _, r := range rules {
		if r.Expr == "" || strings.HasPrefix(r.Expr, "|") || strings.HasPrefix(r.Expr, ">") {
			t.Fatalf("%s: rule %s%s: expression not read (%q)", rulesFile, r.Record, r.Alert, r.Expr)
		}
	}
	return rules
}

var (
	spoolMetricRef = regexp.MustCompile(`\bspool_[a-z0-9_]+\b`)
	recordedRef    = regexp.MustCompile(`\bspool:[a-z0-9_:]+\b`)
)

// checkNames fails for a spool_* or spool:* name in expr that is neither
// defined (histograms' _bucket, _sum and _count included) nor recorded.
func checkNames(t *testing.T, where, expr string, defined, recorded map[string]bool) {
	t.Helper()
	for _, name := range spoolMetricRef.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] {
				base = b
			}
		}
		if !defined[base] {
			t.Errorf("%s: %s is not a metric Spool exports", where, name)
		}
	}
	for _, name := range recordedRef.FindAllString(expr, -1) {
		if !recorded[name] {
			t.Errorf("%s: %s is not recorded by spool-rules.yaml", where, name)
		}
	}
}

// promtoolParse checks that every expression parses, by writing them as
// recording rules and running promtool check rules.
func promtoolParse(t *testing.T, exprs map[string]string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); queries not parsed")
	}
	names := make([]string, 0, len(exprs))
	for k := range exprs {
		names = append(names, k)
	}
	sort.Strings(names)
	var rules []map[string]string
	for i, k := range names {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("query_%d", i), "expr": exprs[k]})
	}
	// JSON is YAML, so promtool reads this as a rule file.
	y, err := json.MarshalIndent(map[string]any{"groups": []any{map[string]any{"name": "queries", "rules": rules}}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, y)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both must be set (the sidecar and links use the uid)", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for _, name := range []string{"datasource", "namespace", "queue", "type"} {
		if vars[name] == "" {
			t.Errorf("no dashboard variable %q", name)
		}
	}

	defined := definedMetrics(t)
	recorded := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	ids := map[int]bool{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var rects []rect
	used := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X < 0 || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		for _, r := range rects {
			if p.GridPos.X < r.x+r.w && r.x < p.GridPos.X+p.GridPos.W && p.GridPos.Y < r.y+r.h && r.y < p.GridPos.Y+p.GridPos.H {
				t.Errorf("panels %q and %q overlap", p.Title, r.title)
			}
		}
		rects = append(rects, rect{p.Title, p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H})
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: needs a title, the ${datasource} data source and at least one query", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("panel %q: empty query or refId %q used twice", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: unknown variable in %s", p.Title, tg.Expr)
			}
			checkNames(t, "panel "+p.Title, expr, defined, recorded)
			for _, name := range spoolMetricRef.FindAllString(expr, -1) {
				used[name] = true
			}
		}
	}
	// The list: throughput, outcomes, lag, depth, durations, per-replica polls.
	for _, name := range []string{"spool_jobs_processed_total", "spool_job_lag_seconds_bucket", "spool_queue_jobs",
		"spool_job_duration_seconds_bucket", "spool_worker_polls_total", "spool_queue_oldest_due_age_seconds"} {
		if !used[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
	t.Run("queries parse", func(t *testing.T) { promtoolParse(t, dashboardQueries(t)) })
}

func TestRulesNameExistingMetrics(t *testing.T) {
	t.Parallel()
	defined := definedMetrics(t)
	rules := loadRules(t)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	exprs := map[string]string{}
	for _, r := range rules {
		checkNames(t, r.Alert+r.Record, r.Expr, defined, recorded)
		exprs[r.Alert+r.Record] = r.Expr
	}
	// The extracted expressions are whole: they parse on their own.
	t.Run("expressions parse", func(t *testing.T) { promtoolParse(t, exprs) })
}

// docRow matches a row of the metrics table in docs/monitoring.md.
var docRow = regexp.MustCompile("(?m)^\\| `(spool_[a-z0-9_]+)` \\| (counter|gauge|histogram|summary) \\|")

// documentedMetrics returns the metrics table of docs/monitoring.md: name to type.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range docRow.FindAllStringSubmatch(string(b), -1) {
		if _, dup := out[m[1]]; dup {
			t.Errorf("docs/monitoring.md lists %s twice", m[1])
		}
		out[m[1]] = m[2]
	}
	return out
}

// TestMetricsDocumented: docs/monitoring.md's table lists every metric the
// code defines, and nothing else. (The types are checked against live
// output in TestPrometheusScrapesServices.)
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	defined := definedMetrics(t)
	documented := documentedMetrics(t)
	for _, name := range keys(defined) {
		if _, ok := documented[name]; !ok {
			t.Errorf("%s is not in the metrics table of docs/monitoring.md", name)
		}
	}
	var extra []string
	for name := range documented {
		if !defined[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	if len(extra) > 0 {
		t.Errorf("docs/monitoring.md lists metrics the code does not define: %v", extra)
	}
}
