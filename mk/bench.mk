# Benchmarks against River (issue 8): see scripts/bench.sh and README.md
# "Performance". BENCH_DIR points at the protocol kit (compare.sh, river/).

.PHONY: bench bench-go

bench: ## compare Spool with River (defaults and tuned) on this PostgreSQL; GROWTH=1 adds growth pairs and latency while pruning
	scripts/bench.sh

bench-go: ## Go benchmarks of the queue (pick-up latency), 5 runs
	scripts/with-pg.sh $(GO) test -run '^$$' -bench . -benchtime 200x -count 5 ./shared/jobqueue
