package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// apiJob is the part of the API's job JSON the checks read.
type apiJob struct {
	ID         int64      `json:"id"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	WorkerID   *string    `json:"worker_id"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	CreatedAt  time.Time  `json:"created_at"`
	Errors     []struct {
		Attempt  int       `json:"attempt"`
		Error    string    `json:"error"`
		At       time.Time `json:"at"`
		WorkerID string    `json:"worker_id"`
	} `json:"errors"`
}

// workerJobs is one worker's share, for the metrics check.
type workerJobs struct {
	Completed int       `json:"completed"`   // jobs whose completing attempt ran here
	Lost      int       `json:"lost"`        // attempts here that a rescuer took back (lease expired)
	Finished  []float64 `json:"finished_at"` // unix seconds of each completed job's finish, sorted
}

// jobsReport is written to -out.
type jobsReport struct {
	Total        int                    `json:"total"`
	Created      []float64              `json:"created_at"` // unix seconds of every job's creation, sorted
	ByStatus     map[string]int         `json:"by_status"`
	ByType       map[string]int         `json:"by_type"`
	Expected     int                    `json:"expected"`
	Other        map[string]int         `json:"other_by_type"` // jobs not enqueued by the waves (helm test), by type
	Attempts     int                    `json:"attempts"`
	Reruns       []int64                `json:"rerun_ids"`
	RerunByForce int                    `json:"rerun_by_forced_delete"`
	RerunByKill  int                    `json:"rerun_by_kill"`     // lost leases of a worker killed with SIGKILL
	RerunByDB    int                    `json:"rerun_by_db_crash"` // attempts ended while the database was down or recovering
	Overlaps     []string               `json:"overlaps"`          // a new attempt started before the previous one ended
	PerWorker    map[string]*workerJobs `json:"per_worker"`
}

const lostWorkerError = "worker lost: lease expired" // shared/jobqueue/store.go

// cmdJobs lists every job through GET /v1/jobs (500 a page, keyset paging
// with after=next_after) and checks: every enqueued id is completed, nothing
// else is unfinished, and every extra attempt is explained by the error
// history as the forced delete's lost lease.
func cmdJobs(args []string) error {
	fs := flag.NewFlagSet("jobs", flag.ExitOnError)
	var a apiFlags
	a.register(fs)
	idFiles := fs.String("ids", "", "comma-separated files of enqueued job ids (one per line)")
	forced := fs.String("forced", "", "comma-separated pod names deleted with --grace-period=0 --force")
	out := fs.String("out", "", "write the report as JSON here")
	watch := fs.String("watch", "", "pod watch stream (optional): says which pods were deleted gracefully, to diagnose unexplained reruns")
	killed := fs.String("killed", "", "comma-separated POD=UNIXSECONDS: worker pods whose process the script killed with SIGKILL, and when")
	dbCrash := fs.String("db-crash", "", "START,END in unix seconds: the database was killed at START and serving again by END; attempts that ended in between are explained by it")
	fs.Parse(args)
	var pods map[string]*podInfo
	if *watch != "" {
		var err error
		if pods, err = readWatch(*watch); err != nil {
			return err
		}
	}
	deletedAt := map[string]time.Time{} // pods deleted with a grace period
	for _, p := range pods {
		if p.HasDelete && p.DelGrace > 0 {
			deletedAt[p.Name] = p.DeleteAt
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	expected := map[int64]bool{}
	for _, f := range splitList(*idFiles) {
		if err := readIDs(f, expected); err != nil {
			return err
		}
	}
	forcedPods := map[string]bool{}
	for _, p := range splitList(*forced) {
		forcedPods[p] = true
	}
	killedAt := map[string]time.Time{}
	for _, kv := range splitList(*killed) {
		name, at, ok := strings.Cut(kv, "=")
		secs, err := strconv.ParseFloat(at, 64)
		if !ok || err != nil {
			return fmt.Errorf("-killed: want POD=UNIXSECONDS, got %q", kv)
		}
		killedAt[name] = time.Unix(0, int64(secs*1e9))
	}
	var dbFrom, dbTo time.Time
	if *dbCrash != "" {
		a, b, _ := strings.Cut(*dbCrash, ",")
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("-db-crash: want START,END, got %q", *dbCrash)
		}
		dbFrom, dbTo = time.Unix(0, int64(x*1e9)), time.Unix(0, int64(y*1e9))
	}

	var jobs []apiJob
	after := int64(0)
	pages := 0
	for {
		path := "/v1/jobs?limit=500"
		if after > 0 {
			path += "&after=" + strconv.FormatInt(after, 10)
		}
		var page struct {
			Jobs      []apiJob `json:"jobs"`
			NextAfter *int64   `json:"next_after"`
		}
		if err := c.do(http.MethodGet, path, nil, &page); err != nil {
			return err
		}
		pages++
		jobs = append(jobs, page.Jobs...)
		if page.NextAfter == nil {
			break
		}
		after = *page.NextAfter
	}

	// A list page leaves out the error history unless include=errors, which
	// shrinks pages to what fits the largest histories: fetch the history of
	// the few jobs that ran more than once one by one (GET /v1/jobs/{id}).
	refetched := 0
	for i := range jobs {
		if jobs[i].Attempts > 1 && len(jobs[i].Errors) == 0 {
			var full struct {
				Job apiJob `json:"job"`
			}
			if err := c.do(http.MethodGet, "/v1/jobs/"+strconv.FormatInt(jobs[i].ID, 10), nil, &full); err != nil {
				return err
			}
			jobs[i].Errors = full.Job.Errors
			refetched++
		}
	}

	rep := jobsReport{Total: len(jobs), ByStatus: map[string]int{}, ByType: map[string]int{}, Other: map[string]int{},
		Expected: len(expected), PerWorker: map[string]*workerJobs{}}
	worker := func(id string) *workerJobs {
		w := rep.PerWorker[id]
		if w == nil {
			w = &workerJobs{}
			rep.PerWorker[id] = w
		}
		return w
	}
	seen := map[int64]bool{}
	var notCompleted, unexplained []string
	for _, j := range jobs {
		if seen[j.ID] {
			fail("job %d listed twice", j.ID)
		}
		seen[j.ID] = true
		rep.ByStatus[j.Status]++
		rep.ByType[j.Type]++
		rep.Attempts += j.Attempts
		rep.Created = append(rep.Created, float64(j.CreatedAt.UnixNano())/1e9)
		if !expected[j.ID] {
			rep.Other[j.Type]++
		}
		if j.Status != "completed" {
			notCompleted = append(notCompleted, fmt.Sprintf("%d(%s,%s)", j.ID, j.Type, j.Status))
			continue
		}
		if j.WorkerID == nil || j.FinishedAt == nil {
			unexplained = append(unexplained, fmt.Sprintf("job %d: completed without worker_id/finished_at", j.ID))
			continue
		}
		w := worker(*j.WorkerID)
		w.Completed++
		w.Finished = append(w.Finished, float64(j.FinishedAt.UnixNano())/1e9)
		// One attempt completed; every other attempt must have left an
		// error entry (a hand-back on shutdown leaves none and does not
		// count the attempt, so it cannot hide here either: it is checked
		// in the logs and metrics).
		if j.Attempts != 1+len(j.Errors) {
			unexplained = append(unexplained, fmt.Sprintf("job %d: %d attempts but %d error entries", j.ID, j.Attempts, len(j.Errors)))
		}
		if len(j.Errors) == 0 {
			continue
		}
		rep.Reruns = append(rep.Reruns, j.ID)
		// Never two at once: each attempt ends (its error entry: the
		// failure, or the rescue of a lost lease) before the next starts,
		// and a killed worker's attempt ended when the process died.
		if j.StartedAt != nil {
			for _, e := range j.Errors {
				if j.StartedAt.Before(e.At) {
					rep.Overlaps = append(rep.Overlaps, fmt.Sprintf("job %d: attempt %d started %s, before attempt %d ended at %s", j.ID, j.Attempts, j.StartedAt.Format("15:04:05.000"), e.Attempt, e.At.Format("15:04:05.000")))
				}
				if t, ok := killedAt[e.WorkerID]; ok && e.Error == lostWorkerError && j.StartedAt.Before(t) {
					rep.Overlaps = append(rep.Overlaps, fmt.Sprintf("job %d: final attempt started %s, before %s was killed at %s", j.ID, j.StartedAt.Format("15:04:05.000"), e.WorkerID, t.Format("15:04:05.000")))
				}
			}
		}
		byForce, byKill, byDB := true, true, true
		for _, e := range j.Errors {
			worker(e.WorkerID).Lost++
			_, wasKilled := killedAt[e.WorkerID]
			inDB := !dbFrom.IsZero() && !e.At.Before(dbFrom) && !e.At.After(dbTo)
			if e.Error != lostWorkerError || !wasKilled {
				byKill = false
			}
			if !inDB {
				byDB = false
			}
			if (e.Error == lostWorkerError && wasKilled) || inDB {
				if !forcedPods[e.WorkerID] {
					byForce = false
				}
				continue
			}
			if e.Error != lostWorkerError || !forcedPods[e.WorkerID] {
				byForce = false
				msg := fmt.Sprintf("job %d attempt %d held by %s: %q at %s", j.ID, e.Attempt, e.WorkerID, e.Error, e.At.Format("15:04:05.000"))
				if t, ok := deletedAt[e.WorkerID]; ok && e.Error == lostWorkerError {
					msg += fmt.Sprintf(" (%.0fs after that pod got SIGTERM at %s and exited: the claim was left behind by a graceful shutdown)",
						e.At.Sub(t).Seconds(), t.Format("15:04:05"))
				}
				unexplained = append(unexplained, msg)
			}
		}
		switch {
		case byForce:
			rep.RerunByForce++
		case byKill:
			rep.RerunByKill++
		case byDB:
			rep.RerunByDB++
		}
	}
	for _, w := range rep.PerWorker {
		sort.Float64s(w.Finished)
	}
	sort.Float64s(rep.Created)
	var missing []int64
	for id := range expected {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	sort.Slice(missing, func(i, k int) bool { return missing[i] < missing[k] })

	info("listed %d jobs in %d pages of GET /v1/jobs?limit=500&after=… (+ %d GET /v1/jobs/{id} for the histories of jobs with more than one attempt); by status %v; by type %v", len(jobs), pages, refetched, rep.ByStatus, rep.ByType)
	check(len(missing) == 0, "all %d enqueued job ids are in the database (missing: %d%s)", len(expected), len(missing), sample64(missing))
	check(len(notCompleted) == 0, "every job is completed (%d of %d; not completed: %d%s)", rep.ByStatus["completed"], len(jobs), len(notCompleted), sampleList(notCompleted))
	info("jobs not from the load waves (helm test, phase 2b): %v", rep.Other)
	check(len(unexplained) == 0, "no job ran twice except after the forced delete or a crash: %d job(s) ran more than once, %d of them after the force-deleted pod %s lost its lease, %d after a SIGKILL, %d after the database crash; unexplained attempts: %d%s",
		len(rep.Reruns), rep.RerunByForce, *forced, rep.RerunByKill, rep.RerunByDB, len(unexplained), sampleList(unexplained))
	check(len(rep.Overlaps) == 0, "never two attempts of a job at once: every re-run started after the previous attempt ended (overlaps: %d%s)", len(rep.Overlaps), sampleList(rep.Overlaps))
	if len(killedAt) > 0 || !dbFrom.IsZero() {
		info("re-runs explained by the crashes: %d after a worker's SIGKILL, %d after the database's", rep.RerunByKill, rep.RerunByDB)
	}
	if len(rep.Reruns) > 0 {
		info("re-run job ids: %s", sample64(rep.Reruns))
	}
	var ws []string
	for _, id := range sortedKeys(rep.PerWorker) {
		w := rep.PerWorker[id]
		ws = append(ws, fmt.Sprintf("%s=%d", id, w.Completed))
	}
	info("completed jobs by worker pod (worker_id): %s", strings.Join(ws, " "))
	if *out != "" {
		return writeJSON(*out, rep)
	}
	return nil
}

func readIDs(path string, into map[int64]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		id, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if into[id] {
			return fmt.Errorf("%s: id %d twice", path, id)
		}
		into[id] = true
	}
	return sc.Err()
}

func sampleList(s []string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > 10 {
		return fmt.Sprintf(": %s … (%d more)", strings.Join(s[:10], "; "), len(s)-10)
	}
	return ": " + strings.Join(s, "; ")
}

func sample64(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return sampleList(s)
}
