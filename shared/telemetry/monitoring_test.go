package telemetry_test

// Checks of the monitoring files against the code, without a database:
// the Grafana dashboard's queries and the rules name only metrics Spool
// exports (or records), every query parses, and docs/monitoring.md lists
// exactly the metrics the code defines. prometheus_test.go runs the same
// queries against a real Prometheus.

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/proctest"
	"github.com/spoolq/spool/shared/schedule"
	"github.com/spoolq/spool/shared/telemetry"
)

var repoRoot = filepath.Join("..", "..")

var (
	rulesFile     = filepath.Join(repoRoot, "helm", "spool", "files", "spool-rules.yaml")
	dashboardFile = filepath.Join(repoRoot, "helm", "spool", "files", "spool-dashboard.json")
	docsFile      = filepath.Join(repoRoot, "docs", "monitoring.md")
	readmeFile    = filepath.Join(repoRoot, "README.md")
)

// describer records the names and label names of the metrics collectors
// describe, so vectors that have no series yet count too.
type describer struct {
	names  map[string]bool
	labels map[string][]string // sorted
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		s := desc.String()
		m := descName.FindStringSubmatch(s)
		l := descLabels.FindStringSubmatch(s)
		if m == nil || l == nil {
			continue
		}
		d.names[m[1]] = true
		d.labels[m[1]] = sortedLabels(strings.Split(l[1], ","))
	}
	return nil
}

// sortedLabels drops empty names and sorts the rest.
func sortedLabels(names []string) []string {
	out := []string{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
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
	return discoverMetrics(t).names
}

// definedLabels is every spool_* metric the code defines with its label
// names, sorted.
func definedLabels(t *testing.T) map[string][]string {
	t.Helper()
	return discoverMetrics(t).labels
}

func discoverMetrics(t *testing.T) *describer {
	t.Helper()
	d := &describer{names: map[string]bool{}, labels: map[string][]string{}}
	d.MustRegister(telemetry.NewPoolCollector(noPool{}))
	jobqueue.NewMetrics(d)
	jobqueue.NewQueueGauges(nil, d)
	schedule.NewMetrics(d)
	// NewRegistry's own: spool_build_info, with its one series.
	mfs, err := telemetry.NewRegistry("test").Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if name := mf.GetName(); strings.HasPrefix(name, "spool_") {
			var labels []string
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				labels = append(labels, lp.GetName())
			}
			d.names[name] = true
			d.labels[name] = sortedLabels(labels)
		}
	}
	// The services' own metrics, and those of the stock kinds' packages.
	for _, dir := range []string{"services", filepath.Join("shared", "httpkind")} {
		err = filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range metricRegistration.FindAllStringSubmatch(string(b), -1) {
				d.names[m[1]] = true
			}
			maps.Copy(d.labels, sourceLabels(t, p, b))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !d.names["spool_http_requests_total"] || !d.names["spool_worker_polls_total"] || !d.names["spool_db_pool_max_connections"] ||
		!d.names["spool_build_info"] {
		t.Fatalf("metric discovery is broken: %v", keys(d.names))
	}
	for name := range d.names {
		if _, ok := d.labels[name]; !ok {
			t.Fatalf("label discovery is broken: no labels found for %s (registered in a form sourceLabels does not know?)", name)
		}
	}
	return d
}

// sourceLabels finds the metrics a Go file creates as
// prometheus.NewXxx(prometheus.XxxOpts{Name: "spool_…"}, []string{labels…})
// and returns their label names.
func sourceLabels(t *testing.T, path string, src []byte) map[string][]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var name string
		for _, e := range opts.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if v, ok := kv.Value.(*ast.BasicLit); ok && v.Kind == token.STRING {
						name, _ = strconv.Unquote(v.Value)
					}
				}
			}
		}
		if !strings.HasPrefix(name, "spool_") {
			return true
		}
		labels := []string{}
		if len(call.Args) > 1 {
			lit, ok := call.Args[1].(*ast.CompositeLit)
			if !ok {
				t.Fatalf("%s: the labels of %s are not a []string literal", path, name)
			}
			for _, e := range lit.Elts {
				v, ok := e.(*ast.BasicLit)
				if !ok || v.Kind != token.STRING {
					t.Fatalf("%s: a label of %s is not a string literal", path, name)
				}
				l, _ := strconv.Unquote(v.Value)
				labels = append(labels, l)
			}
		}
		out[name] = sortedLabels(labels)
		return true
	})
	return out
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
	promtool := proctest.LookPath(t, "promtool", "promtool not installed (apt-get install prometheus); queries not parsed")
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

// docRow matches a row of a metrics table (docs/monitoring.md's, the
// README's): name, type, labels.
var docRow = regexp.MustCompile("(?m)^\\| `(spool_[a-z0-9_]+)` \\| (counter|gauge|histogram|summary) \\|([^|]*)\\|")

// docMetric is a row of a metrics table.
type docMetric struct {
	typ    string
	labels []string // sorted
}

// docLabel is a name or value in backquotes in a table's labels column.
var docLabel = regexp.MustCompile("`([^`]+)`")

// parseDocLabels reads a labels column: labels separated by commas, each
// optionally followed by "= value, value"; a semicolon ends a label's values
// ("`type`, `outcome` = `completed`, `dead`" or "`scope` = `queue`, `type`; `name`").
func parseDocLabels(cell string) []string {
	var out []string
	for _, seg := range strings.Split(cell, ";") {
		names, _, _ := strings.Cut(seg, "=")
		for _, m := range docLabel.FindAllStringSubmatch(names, -1) {
			out = append(out, m[1])
		}
	}
	return sortedLabels(out)
}

// metricsTable returns the metrics table in text: name to type and labels.
func metricsTable(t *testing.T, text, where string) map[string]docMetric {
	t.Helper()
	out := map[string]docMetric{}
	for _, m := range docRow.FindAllStringSubmatch(text, -1) {
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s lists %s twice", where, m[1])
		}
		out[m[1]] = docMetric{typ: m[2], labels: parseDocLabels(m[3])}
	}
	return out
}

// documentedTable returns the metrics table of docs/monitoring.md.
func documentedTable(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	return metricsTable(t, string(b), "docs/monitoring.md")
}

// documentedMetrics returns the metrics table of docs/monitoring.md: name to type.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, m := range documentedTable(t) {
		out[name] = m.typ
	}
	return out
}

// readmeTable returns the table of the README's Metrics section.
func readmeTable(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal("README.md has no \"## Metrics\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	return metricsTable(t, section, "README.md's metrics table")
}

// TestMetricsDocumented: docs/monitoring.md's table and the README's list
// every metric the code defines, with the code's label names, and nothing
// else; the README's types are those of docs/monitoring.md. (The types are
// checked against live output in TestPrometheusScrapesServices.)
func TestMetricsDocumented(t *testing.T) {
	t.Parallel()
	defined := definedLabels(t)
	documented := documentedTable(t)
	readme := readmeTable(t)
	for _, doc := range []struct {
		name  string
		table map[string]docMetric
	}{{"docs/monitoring.md", documented}, {"README.md", readme}} {
		for _, name := range slices.Sorted(maps.Keys(defined)) {
			m, ok := doc.table[name]
			if !ok {
				t.Errorf("%s is not in the metrics table of %s", name, doc.name)
				continue
			}
			if !slices.Equal(m.labels, defined[name]) {
				t.Errorf("%s: %s gives labels %v; the code has %v", name, doc.name, m.labels, defined[name])
			}
		}
		var extra []string
		for name := range doc.table {
			if _, ok := defined[name]; !ok {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		if len(extra) > 0 {
			t.Errorf("%s lists metrics the code does not define: %v", doc.name, extra)
		}
	}
	for name, m := range readme {
		if d, ok := documented[name]; ok && d.typ != m.typ {
			t.Errorf("%s: README.md says %s, docs/monitoring.md %s", name, m.typ, d.typ)
		}
	}
}
