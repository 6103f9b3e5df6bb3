package manifestcheck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// The stock kinds that do real work are off by default; their values put
// the allow list on the API and the workers, the sender on the workers and
// the secrets on the workers only, from the named Secrets.
func TestStockKindsValues(t *testing.T) {
	t.Parallel()
	for where, vars := range spoolEnv(render(t, cases[0])) {
		for _, k := range []string{"SPOOL_HTTP_ALLOWED_HOSTS", "SPOOL_SMTP_FROM", "SPOOL_SMTP_URL", "SPOOL_WEBHOOK_SECRET", "SPOOL_HTTP_HEADER_KEY", "SPOOL_HTTP_SECRET_HEADERS"} {
			if _, ok := vars[k]; ok {
				t.Errorf("defaults: %s sets %s", where, k)
			}
		}
	}
	objs := render(t, cases[0], "--set", "kinds.http.allowedHosts={hooks.example,10.0.0.0/8}", "--set", "kinds.http.webhookSecret=hooks",
		"--set", "kinds.email.smtpUrlSecret=smtp", "--set", "kinds.email.from=noreply@shop.example",
		"--set", "kinds.http.headerKeySecret=sealing", "--set", "kinds.http.secretHeaders={X-Api-Key}")
	hosts, names := 0, 0
	for where, vars := range spoolEnv(objs) {
		if v, ok := vars["SPOOL_HTTP_ALLOWED_HOSTS"]; ok {
			hosts++
			if v != "hooks.example,10.0.0.0/8" {
				t.Errorf("%s: SPOOL_HTTP_ALLOWED_HOSTS=%q", where, v)
			}
		}
		if v, ok := vars["SPOOL_HTTP_SECRET_HEADERS"]; ok {
			names++
			if v != "X-Api-Key" {
				t.Errorf("%s: SPOOL_HTTP_SECRET_HEADERS=%q", where, v)
			}
		}
	}
	if hosts < 2 || names < 2 {
		t.Errorf("SPOOL_HTTP_ALLOWED_HOSTS in %d ConfigMaps, SPOOL_HTTP_SECRET_HEADERS in %d; want the API's and the worker pool's", hosts, names)
	}
	secrets := map[string]string{}
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && strings.HasPrefix(e.Name, "SPOOL_") {
					secrets[c.Name+"/"+e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
		}
	}
	// The header key seals in the API and opens in the workers: both read it.
	if secrets["api/SPOOL_HTTP_HEADER_KEY"] != "sealing/header-key" || secrets["worker/SPOOL_HTTP_HEADER_KEY"] != "sealing/header-key" {
		t.Errorf("SPOOL_HTTP_HEADER_KEY: %v, want sealing/header-key in the API and the worker", secrets)
	}
	if secrets["worker/SPOOL_WEBHOOK_SECRET"] != "hooks/webhook-secret" || secrets["worker/SPOOL_SMTP_URL"] != "smtp/smtp-url" {
		t.Errorf("worker secrets %v, want SPOOL_WEBHOOK_SECRET from hooks/webhook-secret and SPOOL_SMTP_URL from smtp/smtp-url", secrets)
	}
	for k := range secrets {
		if strings.HasPrefix(k, "api/") && (strings.HasSuffix(k, "SPOOL_SMTP_URL") || strings.HasSuffix(k, "SPOOL_WEBHOOK_SECRET")) {
			t.Errorf("the API reads %s, which only workers need", k)
		}
	}
}

// An SMTP URL without a sender fails at install, not at the workers' start.
func TestEmailNeedsASender(t *testing.T) {
	t.Parallel()
	_, errOut, err := helm(t, append([]string{"template", "spool", chartDir, "--namespace", "spool", "--kube-version", kubeVersion},
		append(cases[0].args(), "--set", "kinds.email.smtpUrlSecret=smtp")...)...)
	if err == nil || !strings.Contains(errOut, "kinds.email.from") {
		t.Fatalf("helm template with an SMTP Secret and no sender: %v\n%s", err, errOut)
	}
}
