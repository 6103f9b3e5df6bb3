package manifestcheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The monitoring files have one source, helm/spool/files/ (the chart can
// only read files inside itself); k8s/monitoring/ holds copies for users of
// the plain manifests, next to the rules' unit tests. docs/monitoring.md
// describes them.
var monitoringFiles = []string{"spool-rules.yaml", "spool-dashboard.json"}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMonitoringFilesInSync: k8s/monitoring/ holds exactly the chart's files.
func TestMonitoringFilesInSync(t *testing.T) {
	for _, name := range monitoringFiles {
		src := readFile(t, filepath.Join(chartDir, "files", name))
		cp := readFile(t, filepath.Join(repoRoot, "k8s", "monitoring", name))
		if string(src) != string(cp) {
			t.Errorf("k8s/monitoring/%s differs from helm/spool/files/%s; edit the chart's file and run make monitoring-sync", name, name)
		}
	}
}

// ruleGroups is a rule file or a PrometheusRule spec, as plain data.
type ruleGroups struct {
	Groups []struct {
		Name  string           `json:"name"`
		Rules []map[string]any `json:"rules"`
	} `json:"groups"`
}

// TestPrometheusRuleIsTheRulesFile: the chart's PrometheusRule carries the
// rules of files/spool-rules.yaml unchanged, less the disabled alerts, plus
// additionalRules in a group of their own.
func TestPrometheusRuleIsTheRulesFile(t *testing.T) {
	var file ruleGroups
	if err := yaml.Unmarshal(readFile(t, filepath.Join(chartDir, "files", "spool-rules.yaml")), &file); err != nil {
		t.Fatal(err)
	}
	var rule *PrometheusRule
	for _, o := range render(t, cases[1]) { // all-on: disabledAlerts [SpoolJobsRescued], one additional rule
		if r, ok := o.Obj.(*PrometheusRule); ok {
			rule = r
		}
	}
	if rule == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	js, err := json.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	var got ruleGroups
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Groups) != len(file.Groups)+1 {
		t.Fatalf("rendered %d groups, want the file's %d plus spool-additional", len(got.Groups), len(file.Groups))
	}
	for i, g := range file.Groups {
		want := slices.DeleteFunc(g.Rules, func(r map[string]any) bool { return r["alert"] == "SpoolJobsRescued" })
		if got.Groups[i].Name != g.Name || !reflect.DeepEqual(got.Groups[i].Rules, want) {
			t.Errorf("group %d (%s) differs from files/spool-rules.yaml:\ngot  %v\nwant %v", i, g.Name, got.Groups[i].Rules, want)
		}
	}
	extra := got.Groups[len(got.Groups)-1]
	if extra.Name != "spool-additional" || len(extra.Rules) != 1 || extra.Rules[0]["record"] != "spool:jobs_enqueued:rate5m" {
		t.Errorf("additional rules group: %+v", extra)
	}

	// A misspelt alert name in disabledAlerts is an error, not a silent no-op.
	_, errOut, err := helm(t, "template", "spool", chartDir, "--kube-version", kubeVersion,
		"--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.disabledAlerts={SpoolJobDead}")
	if err == nil || !strings.Contains(errOut, `"SpoolJobDead" is not one of Spool's alerts`) {
		t.Errorf("disabledAlerts with an unknown alert: want an error naming it, got err=%v\n%s", err, errOut)
	}
}

// TestRulesUnitTests runs the rules' unit tests (also in make
// monitoring-check), so chart-check covers them when promtool exists.
func TestRulesUnitTests(t *testing.T) {
	promtool := needPromtool(t, "rule unit tests not run")
	cmd := exec.Command(promtool, "test", "rules", "spool-rules.test.yaml")
	cmd.Dir = filepath.Join(repoRoot, "k8s", "monitoring")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// checkDashboardConfigMap checks a ConfigMap the Grafana sidecar would load.
func checkDashboardConfigMap(t *testing.T, cm *corev1.ConfigMap, namespace string) {
	t.Helper()
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap %s: label grafana_dashboard=%q, want \"1\"", cm.Name, cm.Labels["grafana_dashboard"])
	}
	if cm.Namespace != namespace {
		t.Errorf("ConfigMap %s: namespace %q, want %q", cm.Name, cm.Namespace, namespace)
	}
	want := strings.TrimRight(string(readFile(t, filepath.Join(chartDir, "files", "spool-dashboard.json"))), "\n")
	got := strings.TrimRight(cm.Data["spool.json"], "\n")
	if got != want {
		t.Errorf("ConfigMap %s: spool.json differs from files/spool-dashboard.json", cm.Name)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []any  `json:"panels"`
	}
	if err := json.Unmarshal([]byte(got), &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Errorf("ConfigMap %s: spool.json is not a dashboard (uid %q, %d panels): %v", cm.Name, dash.UID, len(dash.Panels), err)
	}
}

// TestGrafanaDashboardConfigMap: the chart ships the dashboard for the
// sidecar when asked to, in the namespace asked for.
func TestGrafanaDashboardConfigMap(t *testing.T) {
	var found bool
	for _, o := range render(t, cases[1]) {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "spool-grafana-dashboard" {
			found = true
			checkDashboardConfigMap(t, cm, "monitoring")
			if cm.Annotations["grafana_folder"] != "Spool" {
				t.Errorf("annotations %v, want grafana_folder: Spool", cm.Annotations)
			}
		}
	}
	if !found {
		t.Fatal("all-on values: no ConfigMap spool-grafana-dashboard")
	}
	for _, o := range render(t, cases[0]) {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "spool-grafana-dashboard" {
			t.Error("defaults: the dashboard ConfigMap is rendered, but metrics.grafanaDashboard.enabled is false")
		}
	}
	for _, o := range render(t, cases[0], "--set", "metrics.grafanaDashboard.enabled=true") {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == "spool-grafana-dashboard" {
			checkDashboardConfigMap(t, cm, "spool") // the release's namespace
		}
	}
}

// TestMonitoringKustomize builds k8s/monitoring/ as `kubectl apply -k` does.
func TestMonitoringKustomize(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, "k8s", "monitoring"))
	if err != nil {
		t.Fatalf("kustomize build k8s/monitoring/: %v", err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode("kustomize monitoring", out)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	if len(objs) != 1 {
		t.Fatalf("want one object (the dashboard ConfigMap), got %d", len(objs))
	}
	cm, ok := objs[0].Obj.(*corev1.ConfigMap)
	if !ok || cm.Name != "spool-grafana-dashboard" {
		t.Fatalf("want ConfigMap spool-grafana-dashboard, got %s", objs[0])
	}
	checkDashboardConfigMap(t, cm, "spool")
}

// needPromtool returns promtool's path; without it the test is skipped for
// developers and fails under CI. (tools/ is a module of its own, without
// shared/proctest's LookPath.)
func needPromtool(t *testing.T, skipped string) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err == nil {
		return promtool
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("promtool not installed (apt-get install prometheus) and CI is set: %s", skipped)
	}
	t.Skipf("promtool not installed (apt-get install prometheus); %s", skipped)
	return ""
}
