package manifestcheck

import (
	"strings"
	"testing"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      terminationGracePeriodSeconds: 35
      containers:
        - name: x
          image: x:1
          resources:
            limits: {memory: 64Mi}
`

// TestDecodeStrict: every kind of mistake the strict decoder must reject.
func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"valid", "", "", ""},
		{"misspelled field", "terminationGracePeriodSeconds", "terminationGracePeriodSecond", `unknown field "spec.template.spec.terminationGracePeriodSecond"`},
		{"wrong case", "terminationGracePeriodSeconds", "TerminationGracePeriodSeconds", `unknown field "spec.template.spec.TerminationGracePeriodSeconds"`},
		{"wrong type", "terminationGracePeriodSeconds: 35", `terminationGracePeriodSeconds: "35"`, "cannot unmarshal string"},
		{"limit", "limits:", "limit:", `unknown field "spec.template.spec.containers[0].resources.limit"`},
		{"bad quantity", "64Mi", "64MB", "quantities must match"},
		{"duplicate key", "  name: x\nspec:", "  name: x\n  name: z\nspec:", `"name" already set`},
		{"removed API", "apps/v1", "apps/v1beta1", "no kind"},
		{"unknown CRD", "apiVersion: apps/v1\nkind: Deployment", "apiVersion: example.com/v1\nkind: Deployment", "no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(deployment, tc.old, tc.new, 1)
			objs, err := Decode(tc.name, []byte("# comment only\n---\n"+doc))
			if tc.want == "" {
				if err != nil || len(objs) != 1 {
					t.Fatalf("got %d objects, err %v; want 1 object", len(objs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

const podMonitor = `apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  podMetricsEndpoints:
    - port: metrics
      path: /metrics
`

// TestDecodeCRDs: allow-listed CRD kinds are decoded strictly into mirrors.
func TestDecodeCRDs(t *testing.T) {
	if _, err := Decode("ok", []byte(podMonitor)); err != nil {
		t.Fatalf("valid PodMonitor: %v", err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"podMetricsEndpoints", "podMetricEndpoints", `unknown field "spec.podMetricEndpoints"`},
		{"path:", "Path:", `unknown field "spec.podMetricsEndpoints[0].Path"`},
		{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1alpha1", "no kind"},
	} {
		_, err := Decode("bad", []byte(strings.Replace(podMonitor, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s→%s: got err %v, want one containing %q", tc.old, tc.new, err, tc.want)
		}
	}
}
