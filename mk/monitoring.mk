# Monitoring: alert rules, their unit tests, the Grafana dashboard
# (docs/monitoring.md). Included by the top Makefile (-include mk/*.mk).
#
# The files' source is helm/spool/files/; k8s/monitoring/ holds copies
# (make monitoring-sync) next to the rules' unit tests, and make chart-check
# fails when they differ. promtool comes from Debian's prometheus package.

PROMTOOL ?= promtool
MONITORING_FILES := spool-rules.yaml spool-dashboard.json

.PHONY: monitoring-check monitoring-sync

monitoring-check: ## promtool check/test the alert rules; check the Grafana dashboard and the metrics docs
	@command -v $(PROMTOOL) >/dev/null || { echo 'promtool not found: apt-get install prometheus'; exit 1; }
	@for f in $(MONITORING_FILES); do cmp -s helm/spool/files/$$f k8s/monitoring/$$f || \
		{ echo "k8s/monitoring/$$f differs from helm/spool/files/$$f: run make monitoring-sync"; exit 1; }; done
	$(PROMTOOL) check rules k8s/monitoring/spool-rules.yaml
	cd k8s/monitoring && $(PROMTOOL) test rules spool-rules.test.yaml
	$(GO) test -count=1 -run 'TestGrafanaDashboard|TestRulesNameExistingMetrics|TestMetricsDocumented' ./shared/telemetry/

monitoring-sync: ## copy helm/spool/files/{spool-rules.yaml,spool-dashboard.json} to k8s/monitoring/
	@for f in $(MONITORING_FILES); do cp helm/spool/files/$$f k8s/monitoring/$$f; done
