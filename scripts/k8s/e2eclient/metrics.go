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
	fs.Parse(args)
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
	completedBy := byPod(processed, func(l map[string]string) bool { return l["outcome"] == "completed" })
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

	fmt.Printf("  %-34s %7s %8s %10s %10s %8s %6s %s\n", "worker pod", "scrapes", "polls", "prom done", "db done", "tail", "alive", "tail explained by finished_at")
	var sumProm, sumDB, sumTail float64
	var missingPolls, missingProcessed, short []string
	for _, name := range workers {
		w := rep.PerWorker[name]
		if w == nil {
			w = &workerJobs{}
		}
		_, hasPolls := pollsBy[name]
		lived, ended := lifetime(podByName[name])
		unseen := lastUp[name] == 0 && ended && lived < shortLived.Seconds()
		switch {
		case unseen:
			short = append(short, fmt.Sprintf("%s ran %.0fs", name, lived))
		case !hasPolls:
			missingPolls = append(missingPolls, name)
		case w.Completed > 0 && !processedPresent[name]:
			missingProcessed = append(missingProcessed, name)
		}
		p := completedBy[name]
		d := float64(w.Completed)
		alive := lastUp[name] > now-5
		tail := d - p
		sumProm += p
		sumDB += d
		sumTail += tail
		expl := "-"
		if alive {
			if tail != 0 {
				fail("%s (running): Prometheus says %.0f jobs completed, the database %0.f", name, p, d)
			}
		} else if unseen {
			expl = fmt.Sprintf("never scraped: ran %.0fs, all its jobs", lived)
		} else if lastUp[name] > 0 {
			lo := countAfter(w.Finished, lastUp[name]+lagAfter.Seconds())
			hi := countAfter(w.Finished, lastUp[name]-lagBefore.Seconds())
			expl = fmt.Sprintf("%d..%d finished after the last scrape", lo, hi)
			if tail < float64(lo) || tail > float64(hi) {
				fail("%s (deleted): %0.f jobs missing from its last scrape, but %d..%d finished after it", name, tail, lo, hi)
			}
		}
		fmt.Printf("  %-34s %7d %8.0f %10.0f %10.0f %8.0f %6v %s\n", name, scrapes[name], pollsBy[name], p, d, tail, alive, expl)
	}
	if len(short) > 0 {
		info("not scrapeable: %s (pods that run less than %s can end before Prometheus applies their target; their jobs are counted as unscraped tail below)", strings.Join(short, ", "), *shortLived)
	}
	check(len(missingPolls) == 0, "spool_worker_polls_total scraped from every worker pod that ran %s or more (%d of %d pods%s)", *shortLived, len(workers)-len(short), len(workers), sampleList(missingPolls))
	check(len(missingProcessed) == 0, "spool_jobs_processed_total scraped from every such worker pod that completed a job%s", sampleList(missingProcessed))
	completedDB := float64(rep.ByStatus["completed"])
	check(sumDB == completedDB, "the database's completed jobs are all attributed to scraped worker pods (%0.f of %0.f)", sumDB, completedDB)
	check(sumProm+sumTail == completedDB && sumTail >= 0,
		"sum over pods of spool_jobs_processed_total{outcome=\"completed\"} (last sample per pod) = %.0f; + %.0f finished by deleted pods after their last scrape (or by pods never scraped) = %.0f = completed jobs in the database",
		sumProm, sumTail, sumProm+sumTail)
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

func allZero(m map[string]float64) bool {
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
