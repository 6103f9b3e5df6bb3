package main

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spoolq/spool/shared/telemetry"
)

type configOut struct {
	PollIntervalMs float64 `json:"poll_interval_ms"`
	ListenNotify   bool    `json:"listen_notify"`
	Notify         string  `json:"notify"`
	Completion     string  `json:"completion"`
	ClaimBatch     string  `json:"claim_batch"`
	MaxWorkers     int     `json:"max_workers"`
	PoolMaxConns   int     `json:"pool_max_conns"`
	InsertMethod   string  `json:"insert_method"`
	Processes      string  `json:"processes"`
}

type pgOut struct {
	ServerVersion     string `json:"server_version"`
	SynchronousCommit string `json:"synchronous_commit"`
	Fsync             string `json:"fsync"`
	SharedBuffers     string `json:"shared_buffers"`
}

// result has the protocol's fields (same names as the River harness) plus
// Spool's memory figures.
type result struct {
	System  string `json:"system"`
	Version string `json:"version"`
	Mode    string `json:"mode"`
	N       int    `json:"n"`
	Workers int    `json:"workers"`

	InsertBatch              int      `json:"insert_batch,omitempty"`
	InsertJobsPerS           *float64 `json:"insert_jobs_per_s,omitempty"`
	WorkJobsPerS             *float64 `json:"work_jobs_per_s,omitempty"`
	ExecutedJobsPerS         *float64 `json:"executed_jobs_per_s,omitempty"`
	SustainedJobsPerS        *float64 `json:"sustained_jobs_per_s,omitempty"`
	ConcurrentInsertJobsPerS *float64 `json:"concurrent_insert_jobs_per_s,omitempty"`
	InsertS                  *float64 `json:"insert_s,omitempty"`
	WorkS                    *float64 `json:"work_s,omitempty"`
	SustainedS               *float64 `json:"sustained_s,omitempty"`

	Rate         *float64 `json:"rate,omitempty"`
	DurationS    *float64 `json:"duration_s,omitempty"`
	Samples      *int     `json:"samples,omitempty"`
	Missing      *int     `json:"missing,omitempty"`
	P50Ms        *float64 `json:"p50_ms,omitempty"`
	P90Ms        *float64 `json:"p90_ms,omitempty"`
	P99Ms        *float64 `json:"p99_ms,omitempty"`
	MaxMs        *float64 `json:"max_ms,omitempty"`
	MeanMs       *float64 `json:"mean_ms,omitempty"`
	InsertP50Ms  *float64 `json:"insert_p50_ms,omitempty"`
	InsertP99Ms  *float64 `json:"insert_p99_ms,omitempty"`
	AchievedRate *float64 `json:"achieved_rate,omitempty"`
	TailMaxMs    *float64 `json:"tail_max_ms,omitempty"`

	RSSIdleMiB *float64 `json:"rss_idle_mib,omitempty"`
	RSSPeakMiB *float64 `json:"rss_peak_mib,omitempty"`

	Config          configOut `json:"config"`
	Postgres        pgOut     `json:"postgres"`
	Database        string    `json:"database"`
	GoVersion       string    `json:"go"`
	CPUs            int       `json:"cpus"`
	StartedAt       string    `json:"started_at"`
	LoadAvg1m       *float64  `json:"loadavg_1m_at_start,omitempty"`
	PrefillFinished int       `json:"prefill_finished"`
	PrefillExpired  int       `json:"prefill_expired,omitempty"`
	PrunedDuringRun *int      `json:"pruned_during_run,omitempty"`
	// PruneCoveredMeasured: share of the measured period the pruner was deleting.
	PruneCoveredMeasured *float64 `json:"prune_covered_measured,omitempty"`
	WallS                float64  `json:"wall_s"`
}

func newResult(o opts, start time.Time) *result {
	poll := o.poll
	if poll == 0 {
		poll = time.Second
	}
	version := telemetry.Version
	if bi, ok := debug.ReadBuildInfo(); ok && version == "dev" && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	r := &result{System: "spool", Version: version, Mode: o.mode, Workers: o.workers, Database: o.db,
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), StartedAt: start.UTC().Format(time.RFC3339),
		LoadAvg1m: loadAvg(), PrefillFinished: o.prefillFinished, PrefillExpired: o.prefillExpired,
		Config: configOut{
			PollIntervalMs: float64(poll) / float64(time.Millisecond), ListenNotify: true,
			Notify:     "statement trigger in the inserting transaction, one per queue per statement",
			Completion: "batched: one UPDATE for everything finished while the previous batch was written",
			ClaimBatch: "free slots, at most 100 per claim query; a busy worker waits up to 2 ms to gather half its slots and keeps up to two claims in flight",
			MaxWorkers: o.workers, PoolMaxConns: o.maxConns - 1, InsertMethod: "EnqueueManyFast (COPY)",
			Processes: "one process inserts and works; one LISTEN connection besides the pool",
		}}
	if o.mode == "throughput" {
		r.N, r.InsertBatch = o.n, o.insertBatch
		if o.insertMethod == "many" {
			r.Config.InsertMethod = "EnqueueMany (multi-row INSERT ... unnest)"
		}
	} else {
		r.Config.InsertMethod = "Enqueue (one job per transaction)"
	}
	return r
}
