package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

type sample struct {
	t float64
	v float64
}

type series struct {
	labels  map[string]string
	samples []sample
}

func (s series) last() sample { return s.samples[len(s.samples)-1] }

// promRange returns the raw samples of selector over the last window.
func promRange(base, selector string, window time.Duration) ([]series, error) {
	q := fmt.Sprintf("%s[%ds]", selector, int(window.Seconds()))
	resp, err := http.Get(strings.TrimRight(base, "/") + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	var out []series
	for _, res := range r.Data.Result {
		s := series{labels: res.Metric}
		for _, v := range res.Values {
			t, _ := v[0].(float64)
			str, _ := v[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				continue
			}
			s.samples = append(s.samples, sample{t, f})
		}
		if len(s.samples) > 0 {
			out = append(out, s)
		}
	}
	return out, nil
}

// byPod sums the last sample of each series per pod label.
func byPod(ss []series, keep func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		if keep != nil && !keep(s.labels) {
			continue
		}
		out[s.labels["pod"]] += s.last().v
	}
	return out
}

// byPodResets is byPod for counters that may restart from 0 (a container
// restarted in the same pod): each series' increase over the window, counted
// across resets, plus its first sample.
func byPodResets(ss []series, keep func(map[string]string) bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		if keep != nil && !keep(s.labels) {
			continue
		}
		total := s.samples[0].v
		for i := 1; i < len(s.samples); i++ {
			if d := s.samples[i].v - s.samples[i-1].v; d >= 0 {
				total += d
			} else {
				total += s.samples[i].v
			}
		}
		out[s.labels["pod"]] += total
	}
	return out
}

// upOf returns the `up` samples of one pod.
func upOf(up []series, pod string) []sample {
	var out []sample
	for _, s := range up {
		if s.labels["pod"] == pod {
			out = append(out, s.samples...)
		}
	}
	return out
}

func countAfter(sorted []float64, t float64) int {
	i := sort.SearchFloat64s(sorted, t)
	for i < len(sorted) && sorted[i] <= t {
		i++
	}
	return len(sorted) - i
}

// cmdMetrics compares what Prometheus recorded with the database. Pods
// that were deleted take their counters with them, so for each pod the last
// sample Prometheus scraped is used (a pod's counters never reset: the checks
// of `pods` fail on any container restart). For a pod still running, that
// sample must equal the database's count for the pod exactly. For a deleted
// pod the difference is the jobs it finished after its last successful
// scrape; that is checked against the jobs' finished_at times.
func cmdMetrics(args []string) error {
	fs := flag.NewFlagSet("metrics", flag.ExitOnError)
	prom := fs.String("prom", "", "Prometheus base URL")
	jobsFile := fs.String("jobs", "", "report written by `e2eclient jobs -out`")
	watch := fs.String("watch", "", "pod watch stream file (which pods existed)")
	since := fs.Float64("since", 0, "unix time Prometheus started (window start)")
	lagBefore := fs.Duration("tail-slack", 2*time.Second, "a job finished this long before a pod's last scrape may still be missing from it (completion batches are counted once written)")
	lagAfter := fs.Duration("tail-read", time.Second, "a job finished this long after a pod's last scrape cannot be in it")
	shortLived := fs.Duration("short-lived", 10*time.Second, "a pod that ran less than this may never be scraped (Prometheus applies discovered targets every 5 s)")
	killed := fs.String("killed", "", "comma-separated POD=UNIXSECONDS: worker pods whose process was SIGKILLed then (its counters restart from 0; what it finished after its last scrape before the kill is never seen)")
	idle := fs.String("no-kinds", "", "comma-separated worker pods that ran no kind (the default install's: the diagnostic kinds are off by default), so never poll")
	fs.Parse(args)
	noKinds := map[string]bool{}
	for _, p := range splitList(*idle) {
		noKinds[p] = true
	}
	killedAt := map[string]float64{}
	for _, kv := range splitList(*killed) {
		name, at, ok := strings.Cut(kv, "=")
		secs, err := strconv.ParseFloat(at, 64)
		if !ok || err != nil {
			return fmt.Errorf("-killed: want POD=UNIXSECONDS, got %q", kv)
		}
		killedAt[name] = secs
	}
	var rep jobsReport
	if err := readJSON(*jobsFile, &rep); err != nil {
		return err
	}
	pods, err := readWatch(*watch)
	if err != nil {
		return err
	}
	window := time.Since(unixF(*since)) + time.Minute
	now := float64(time.Now().UnixNano()) / 1e9

	up, err := promRange(*prom, `up`, window)
	if err != nil {
		return err
	}
	lastUp := map[string]float64{}
	scrapes := map[string]int{}
	for _, s := range up {
		for _, smp := range s.samples {
			if smp.v == 1 {
				scrapes[s.labels["pod"]]++
				lastUp[s.labels["pod"]] = max(lastUp[s.labels["pod"]], smp.t)
			}
		}
	}
	polls, err := promRange(*prom, `spool_worker_polls_total`, window)
	if err != nil {
		return err
	}
	processed, err := promRange(*prom, `spool_jobs_processed_total`, window)
	if err != nil {
		return err
	}
	claimed, err := promRange(*prom, `spool_worker_claimed_jobs_sum`, window)
	if err != nil {
		return err
	}
	enq, err := promRange(*prom, `spool_jobs_enqueued_total{component="api"}`, window)
	if err != nil {
		return err
	}
	buildInfo, err := promRange(*prom, `spool_build_info{service="api"}`, window)
	if err != nil {
		return err
	}
	pollsBy := byPod(polls, nil)
	pollsJobs := byPod(polls, func(l map[string]string) bool { return l["result"] == "jobs" })
	// Counters restart from 0 with a killed worker's container: add them up across resets.
	completedBy := byPodResets(processed, func(l map[string]string) bool { return l["outcome"] == "completed" })
	otherOutcomes := map[string]float64{}
	for _, s := range processed {
		if o := s.labels["outcome"]; o != "completed" {
			otherOutcomes[o] += s.last().v
		}
	}
	processedPresent := map[string]bool{}
	for _, s := range processed {
		processedPresent[s.labels["pod"]] = true
	}
	claimedBy := byPod(claimed, nil)
	enqBy := byPod(enq, nil)
	apiPresent := map[string]bool{}
	for _, s := range buildInfo {
		apiPresent[s.labels["pod"]] = true
	}

	// The pods that ran, from the watch (api and worker pods that got an IP).
	var workers, apis []string
	podByName := map[string]*podInfo{}
	for _, p := range pods {
		podByName[p.Name] = p
		if p.IP == "" || p.Running.IsZero() {
			continue
		}
		switch p.Component {
		case "worker":
			workers = append(workers, p.Name)
		case "api":
			apis = append(apis, p.Name)
		}
	}
	sort.Strings(workers)
	sort.Strings(apis)

	// Per worker pod, p is the last sample Prometheus scraped of its
	// completed counter and d the jobs the database says it completed:
	//   - alive at the end (scraped in the last 5 s): p = d exactly;
	//   - deleted after at least one scrape: d - p is the jobs it finished
	//     after its last scrape, so lo <= d - p <= hi with lo, hi counted
	//     from the jobs' finished_at around that scrape;
	//   - never scraped: p = 0 and all d jobs are unseen. Allowed only for
	//     a pod that ended within -short-lived (Prometheus applies new
	//     targets every 5 s), and those jobs must have finished while it ran;
	//     the pods are listed and their jobs count against the bound below.
	//   - every scraped pod polled: its spool_worker_polls_total (all
	//     results) is > 0 (the series exist from the start at 0, so presence
	//     proves nothing).
	fmt.Printf("  %-34s %7s %8s %10s %10s %8s %6s %s\n", "worker pod", "scrapes", "polls", "prom done", "db done", "tail", "alive", "tail explained by finished_at")
	var sumDB, tailHi, unseenJobs, lostAttempts float64
	var noPolls, missingProcessed, unseen, unseenBad []string
	known := map[string]bool{}
	for _, name := range workers {
		known[name] = true
		w := rep.PerWorker[name]
		if w == nil {
			w = &workerJobs{}
		}
		lived, ended := lifetime(podByName[name])
		scraped := lastUp[name] > 0
		p := completedBy[name]
		d := float64(w.Completed)
		alive := lastUp[name] > now-5
		tail := d - p
		// A SIGKILLed worker's jobs finished between its last scrape before
		// the kill and the kill are in the database but were never scraped.
		killGap := 0
		if kt, ok := killedAt[name]; ok {
			before := 0.0
			for _, smp := range upOf(up, name) {
				if smp.v == 1 && smp.t < kt {
					before = max(before, smp.t)
				}
			}
			killGap = countAfter(w.Finished, before-lagBefore.Seconds()) - countAfter(w.Finished, kt+lagAfter.Seconds())
			tailHi += float64(killGap)
			info("%s was SIGKILLed at %s: %d job(s) finished between its last scrape before the kill and the kill may be unseen", name, time.Unix(int64(kt), 0).Format("15:04:05"), killGap)
		}
		sumDB += d
		lostAttempts += float64(w.Lost)
		expl := "-"
		switch {
		case !scraped:
			unseenJobs += d
			unseen = append(unseen, fmt.Sprintf("%s (ran %.0fs, completed %d jobs)", name, lived, w.Completed))
			if !ended || lived >= shortLived.Seconds() {
				unseenBad = append(unseenBad, fmt.Sprintf("%s (ended %v, ran %.0fs)", name, ended, lived))
			}
			// Its jobs must have finished while it ran.
			from, to := runWindow(podByName[name], now)
			to += lagAfter.Seconds()
			if n := len(w.Finished) - countAfter(w.Finished, from) + countAfter(w.Finished, to); n > 0 {
				fail("%s (never scraped): %d of its %d completed jobs finished outside its lifetime", name, n, w.Completed)
			}
			expl = fmt.Sprintf("never scraped: ran %.0fs, all %d of its jobs unseen", lived, w.Completed)
		case alive:
			if tail < 0 || tail > float64(killGap) {
				fail("%s (running): Prometheus says %.0f jobs completed, the database %.0f (unseen at a kill: at most %d)", name, p, d, killGap)
			}
		default:
			lo := countAfter(w.Finished, lastUp[name]+lagAfter.Seconds())
			hi := countAfter(w.Finished, lastUp[name]-lagBefore.Seconds())
			tailHi += float64(hi)
			expl = fmt.Sprintf("%d..%d finished after the last scrape", lo, hi)
			if tail < float64(lo) || tail > float64(hi+killGap) {
				fail("%s (deleted): %.0f jobs missing from its last scrape, but %d..%d finished after it", name, tail, lo, hi)
			}
		}
		if scraped && pollsBy[name] <= 0 && !noKinds[name] {
			noPolls = append(noPolls, name)
		}
		if noKinds[name] && w.Completed > 0 {
			fail("%s ran no kind but completed %d jobs", name, w.Completed)
		}
		if scraped && w.Completed > 0 && !processedPresent[name] {
			missingProcessed = append(missingProcessed, name)
		}
		fmt.Printf("  %-34s %7d %8.0f %10.0f %10.0f %8.0f %6v %s\n", name, scrapes[name], pollsBy[name], p, d, tail, alive, expl)
	}
	check(len(unseenBad) == 0, "worker pods never scraped: %d%s; each ended within %s (else Prometheus should have seen it)%s",
		len(unseen), sampleList(unseen), *shortLived, failList("scrapeable but never scraped", unseenBad))
	check(len(noPolls) == 0, "spool_worker_polls_total > 0 (last sample, all results) for every scraped worker pod (%d of %d pods scraped%s)", len(workers)-len(unseen), len(workers), failList("no polls", noPolls))
	check(len(missingProcessed) == 0, "spool_jobs_processed_total scraped from every scraped worker pod that completed a job%s", sampleList(missingProcessed))
	completedDB := float64(rep.ByStatus["completed"])
	check(sumDB == completedDB, "the database's completed jobs are all attributed to worker pods seen in the watch (%.0f of %.0f)", sumDB, completedDB)
	// The aggregate, from Prometheus' side: the last sample of every pod
	// series Prometheus has (not only the pods the watch knows), against the
	// database's count. A completion is counted once its batch is written,
	// so Prometheus can never be ahead of the database, except that a
	// worker counts a batch's completions even when some were no longer its
	// own (shared/jobqueue/completer.go): at most one per attempt that a
	// rescuer took back ("lost" attempts, from the error histories). Below,
	// Prometheus misses only what it could not see: the jobs deleted pods
	// finished after their last scrape (at most hi each, as above) and the
	// jobs of pods it never scraped.
	var sumPromAll float64
	var unknown []string
	for _, pod := range sortedKeys(completedBy) {
		sumPromAll += completedBy[pod]
		if !known[pod] && completedBy[pod] > 0 {
			unknown = append(unknown, fmt.Sprintf("%s=%.0f", pod, completedBy[pod]))
		}
	}
	check(len(unknown) == 0, "every pod with completed jobs in Prometheus is a worker pod of the watch%s", sampleList(unknown))
	lowest := completedDB - tailHi - unseenJobs
	check(sumPromAll <= completedDB+lostAttempts && sumPromAll >= lowest,
		"sum over every pod in Prometheus of spool_jobs_processed_total{outcome=\"completed\"} (last sample per pod) = %.0f, within [%.0f, %.0f]: the database's %.0f completed jobs, less at most %.0f finished by deleted pods after their last scrape and %.0f by %d pods never scraped; plus at most %.0f attempts lost to a rescue",
		sumPromAll, lowest, completedDB+lostAttempts, completedDB, tailHi, unseenJobs, len(unseen), lostAttempts)
	check(len(otherOutcomes) == 0 || allZero(otherOutcomes), "no attempt ended other than completed (retried, dead, handed_back ...): %v", otherOutcomes)
	var sumClaimed, sumPollsJobs float64
	for _, name := range workers {
		sumClaimed += claimedBy[name]
		sumPollsJobs += pollsJobs[name]
	}
	info("claims: sum of spool_worker_polls_total{result=\"jobs\"} = %.0f polls that claimed %.0f jobs (spool_worker_claimed_jobs_sum); database: %d attempts for %d jobs",
		sumPollsJobs, sumClaimed, rep.Attempts, rep.Total)
	check(sumClaimed <= float64(rep.Attempts), "jobs claimed per Prometheus (%.0f) <= attempts in the database (%d)", sumClaimed, rep.Attempts)

	// API pods: every enqueue is counted by the pod that served it. A deleted
	// API pod keeps serving keep-alive connections during its drain, and the
	// requests of its last second may come after its last scrape; those can
	// only be jobs created from shortly before that scrape until it stopped.
	var sumEnq float64
	var apiMissing []string
	tailMax := 0
	for _, name := range apis {
		if lastUp[name] == 0 || !apiPresent[name] {
			apiMissing = append(apiMissing, name)
		}
		sumEnq += enqBy[name]
		alive := lastUp[name] > now-5
		if !alive && lastUp[name] > 0 {
			tailMax += countAfter(rep.Created, lastUp[name]-lagBefore.Seconds()) - countAfter(rep.Created, lastUp[name]+15)
		}
		info("api pod %-30s scrapes %4d, spool_jobs_enqueued_total %5.0f, alive %v", name, scrapes[name], enqBy[name], alive)
	}
	check(len(apiMissing) == 0, "every API pod scraped (up, spool_build_info{service=\"api\"}): %d pods%s", len(apis), sampleList(apiMissing))
	apiTail := float64(rep.Total) - sumEnq
	check(apiTail >= 0 && apiTail <= float64(tailMax),
		"sum over API pods of spool_jobs_enqueued_total (last sample per pod) = %.0f; + %.0f served by deleted API pods after their last scrape (at most %d jobs were created then) = %d = jobs in the database",
		sumEnq, apiTail, tailMax, rep.Total)
	return nil
}

// lifetime is how long a pod's main container ran (second resolution), and
// whether it has ended.
func lifetime(p *podInfo) (float64, bool) {
	if p == nil || p.Running.IsZero() {
		return 0, false
	}
	if t := p.Terminated; t != nil {
		return t.FinishedAt.Sub(p.Running).Seconds(), true
	}
	if p.HasDelete { // force-deleted: no final status; the kubelet gives it at most 2 s more
		return p.DeleteAt.Sub(p.Running).Seconds() + 2, true
	}
	return 0, false
}

// runWindow is when a pod's main container can have run, in unix seconds,
// with the second that the API's timestamps truncate: from its start to its
// recorded end, else the SIGKILL deadline of its deletion (for a forced
// delete the kubelet's minimum grace, 2 s), else now.
func runWindow(p *podInfo, now float64) (from, to float64) {
	from = float64(p.Running.Unix()) - 1
	switch {
	case p.Terminated != nil:
		to = float64(p.Terminated.FinishedAt.Unix()) + 1
	case p.HasDelete:
		to = float64(max(p.Deadline.Unix(), p.DeleteAt.Unix()+2)) + 1
	default:
		to = now
	}
	return from, to
}

// failList formats the offending items of a check, if any.
func failList(what string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	return "; " + what + sampleList(items)
}

func allZero(m map[string]float64) bool {
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
