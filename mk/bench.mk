# Benchmarks against River (issue 8): see scripts/bench.sh and README.md
# "Performance". BENCH_DIR points at the protocol kit (compare.sh, river/).

.PHONY: bench bench-go bench-rows bench-backlog bench-http

bench: ## compare Spool with River (defaults and tuned) on this PostgreSQL; GROWTH=1 adds growth pairs and latency while pruning
	scripts/bench.sh

bench-go: ## Go benchmarks of the queue (pick-up latency), 5 runs
	scripts/with-pg.sh $(GO) test -run '^$$' -bench . -benchtime 200x -count 5 ./shared/jobqueue

bench-rows: ## a hostile job's row and the memory of the worker and API reading it (6 jobs x 40 attempts x 1 MiB messages)
	$(GO) build -o bin/spool-api ./services/api
	scripts/with-pg.sh sh -c 'for i in 1 2 3; do $(GO) run ./bench/rows -url "$$TEST_DATABASE_URL" -api bin/spool-api; done'

bench-backlog: ## the read routes at a million pending jobs, beside their baselines (unbounded list scans, counts per request), 5 runs
	scripts/with-pg.sh $(GO) test -run '^$$' -bench DeepBacklog -benchtime 20x -count 5 -timeout 30m ./services/api/internal/httpapi

bench-http: ## POST /v1/jobs at the API's defaults under wrk (64 and 1 connections) against pgbench's single-row insert, A B pairs
	scripts/bench-http.sh
