package manifestcheck

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// TestKustomizeBuild builds k8s/ the way `kubectl apply -k k8s/` does
// (kustomize's krusty API) and checks the result like a chart rendering.
func TestKustomizeBuild(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, "k8s"))
	if err != nil {
		t.Fatalf("kustomize build k8s/: %v", err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode("kustomize", out)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	for _, o := range objs {
		ns, _ := o.Obj.(interface{ GetNamespace() string })
		if o.GVK.Kind != "Namespace" && (ns == nil || ns.GetNamespace() != "spool") {
			t.Errorf("%s: namespace %q, want spool", o, ns.GetNamespace())
		}
	}
	if err := Check(objs, Options{Migrations: "initContainer", ExternalSecrets: k8sExternalSecrets}); err != nil {
		t.Errorf("checks:\n%v", err)
	}
}

// TestPrometheusRules runs promtool on the rendered PrometheusRule (all
// options on). promtool comes from Debian's prometheus package.
func TestPrometheusRules(t *testing.T) {
	promtool := needPromtool(t, "PrometheusRule expressions not checked")
	var rule *PrometheusRule
	for _, o := range render(t, cases[1]) {
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
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, y)
	}
}

// TestSchemaCoversValues: values.schema.json and values.yaml describe the
// same keys. (helm validates values.yaml against the schema, so a key
// missing from the schema already fails lint; this catches the reverse, a
// schema property no default documents.)
func TestSchemaCoversValues(t *testing.T) {
	var values map[string]any
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	b, err = os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		if ref, ok := s["$ref"].(string); ok {
			d, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			return d
		}
		return s
	}
	var walk func(path string, s map[string]any, v map[string]any)
	walk = func(path string, s map[string]any, v map[string]any) {
		s = resolve(s)
		props, ok := s["properties"].(map[string]any)
		if !ok || s["additionalProperties"] != false {
			return // a passed-through Kubernetes object or a free-form map
		}
		for name, p := range props {
			if name == "global" && path == "" || name == "claims" && strings.HasSuffix(path, "resources.") {
				continue // Helm's, for subcharts; Kubernetes' (resources.claims)
			}
			child, present := v[name]
			if !present {
				t.Errorf("schema property %s%s has no default in values.yaml", path, name)
				continue
			}
			if m, ok := child.(map[string]any); ok {
				walk(path+name+".", p.(map[string]any), m)
			}
		}
	}
	walk("", schema, values)

	// A pool takes the same settings as the worker defaults (its own image
	// too), plus enabled.
	worker := resolve(schema["properties"].(map[string]any)["worker"].(map[string]any))["properties"].(map[string]any)
	pool := defs["workerPool"].(map[string]any)["properties"].(map[string]any)
	var w, p []string
	for k := range worker {
		if k != "pools" && k != "schedules" {
			w = append(w, k)
		}
	}
	for k := range pool {
		if k != "enabled" {
			p = append(p, k)
		}
	}
	slices.Sort(w)
	slices.Sort(p)
	if !slices.Equal(w, p) {
		t.Errorf("worker defaults %v and pool settings %v differ", w, p)
	}
}
