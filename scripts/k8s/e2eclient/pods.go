package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The pod watch stream: `kubectl get pods -w --output-watch-events -o json`
// writes one JSON object per event, {"type": "ADDED|MODIFIED|DELETED", "object": pod}.

type k8sPod struct {
	Metadata struct {
		Name                       string            `json:"name"`
		UID                        string            `json:"uid"`
		Labels                     map[string]string `json:"labels"`
		CreationTimestamp          time.Time         `json:"creationTimestamp"`
		DeletionTimestamp          *time.Time        `json:"deletionTimestamp"`
		DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds"`
	} `json:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase"`
		PodIP             string            `json:"podIP"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	ContainerID  string         `json:"containerID"`
	RestartCount int            `json:"restartCount"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Terminated *termState `json:"terminated"`
}

type termState struct {
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal"`
	Reason     string    `json:"reason"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// podInfo is everything the watch said about one pod (by UID).
type podInfo struct {
	Name       string
	UID        string
	Component  string
	IP         string
	Created    time.Time
	Running    time.Time // first container start seen
	Grace      int64     // spec.terminationGracePeriodSeconds
	Deleted    bool      // DELETED event seen
	DeleteAt   time.Time // deletion requested (deletionTimestamp - deletionGracePeriodSeconds)
	Deadline   time.Time // deletionTimestamp: SIGKILL after this
	DelGrace   int64     // deletionGracePeriodSeconds (0: forced)
	HasDelete  bool
	Terminated *termState // main container's last terminated state
	Container  string
	IDs        []string // containerd ids of the main container
	Restarts   int
}

func mainContainer(component string) string {
	switch component {
	case "test":
		return "enqueue"
	}
	return component // api, worker, migrate
}

func readWatch(path string) (map[string]*podInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pods := map[string]*podInfo{}
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var ev struct {
			Type   string `json:"type"`
			Object k8sPod `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // a watcher killed mid-object leaves a truncated tail
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		p := ev.Object
		if p.Metadata.UID == "" {
			continue
		}
		pi := pods[p.Metadata.UID]
		if pi == nil {
			comp := p.Metadata.Labels["app.kubernetes.io/component"]
			pi = &podInfo{Name: p.Metadata.Name, UID: p.Metadata.UID, Component: comp, Created: p.Metadata.CreationTimestamp,
				Container: mainContainer(comp)}
			pods[p.Metadata.UID] = pi
		}
		if p.Spec.TerminationGracePeriodSeconds != nil {
			pi.Grace = *p.Spec.TerminationGracePeriodSeconds
		}
		if p.Status.PodIP != "" {
			pi.IP = p.Status.PodIP
		}
		if ev.Type == "DELETED" {
			pi.Deleted = true
		}
		if p.Metadata.DeletionTimestamp != nil && p.Metadata.DeletionGracePeriodSeconds != nil && !pi.HasDelete {
			pi.HasDelete = true
			pi.Deadline = *p.Metadata.DeletionTimestamp
			pi.DelGrace = *p.Metadata.DeletionGracePeriodSeconds
			pi.DeleteAt = pi.Deadline.Add(-time.Duration(pi.DelGrace) * time.Second)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name != pi.Container {
				continue
			}
			pi.Restarts = max(pi.Restarts, cs.RestartCount)
			if cs.ContainerID != "" {
				id := cs.ContainerID[strings.Index(cs.ContainerID, "://")+3:]
				if !contains(pi.IDs, id) {
					pi.IDs = append(pi.IDs, id)
				}
			}
			if cs.State.Running != nil && pi.Running.IsZero() {
				pi.Running = cs.State.Running.StartedAt
			}
			if t := cs.State.Terminated; t != nil {
				pi.Terminated = t
				if pi.Running.IsZero() {
					pi.Running = t.StartedAt
				}
			}
		}
	}
	return pods, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readExits parses `ctr events` output: "<time> <ns> /tasks/exit {json}".
func readExits(path string) (map[string]int, error) {
	out := map[string]int{}
	if path == "" {
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return out, nil
		}
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "/tasks/exit") {
			continue
		}
		i := strings.Index(line, "{")
		if i < 0 {
			continue
		}
		var ev struct {
			ContainerID string `json:"container_id"`
			ID          string `json:"id"`
			ExitStatus  int    `json:"exit_status"`
		}
		if json.Unmarshal([]byte(line[i:]), &ev) != nil {
			continue
		}
		if ev.ID == "" || ev.ID == ev.ContainerID { // the init process, not an exec
			out[ev.ContainerID] = ev.ExitStatus
		}
	}
	return out, sc.Err()
}

// podLog is what a Spool container's JSON log says about its life.
type podLog struct {
	Found     bool
	Lines     int
	Started   bool      // "spool-worker starting" / "spool-api starting"
	Stopping  time.Time // worker: "worker stopping: no new jobs claimed"
	Running   int       // jobs running at that moment
	Timeout   bool      // worker: "shutdown timeout reached"
	HandedBck int       // worker: "job handed back on shutdown"
	Exiting   time.Time // worker: "spool-worker exiting" / api: "spool-api stopped"
	Clean     *bool
	Errors    int // level ERROR lines
}

func readLog(path string) podLog {
	var l podLog
	f, err := os.Open(path)
	if err != nil {
		return l
	}
	defer f.Close()
	l.Found = true
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l.Lines++
		var e struct {
			Time    time.Time `json:"time"`
			Level   string    `json:"level"`
			Msg     string    `json:"msg"`
			Clean   *bool     `json:"clean"`
			Running *int      `json:"running"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		// A custom worker built on shared/workerapp (a pool with its own
		// image, e.g. examples/customworker) logs "<its name> starting/exiting".
		case e.Msg == "spool-api starting" || strings.HasSuffix(e.Msg, "worker starting"):
			l.Started = true
		case e.Msg == "worker stopping: no new jobs claimed":
			l.Stopping = e.Time
			if e.Running != nil {
				l.Running = *e.Running
			}
		case strings.HasPrefix(e.Msg, "shutdown timeout reached"):
			l.Timeout = true
		case e.Msg == "job handed back on shutdown":
			l.HandedBck++
		case strings.HasSuffix(e.Msg, "worker exiting"):
			l.Exiting, l.Clean = e.Time, e.Clean
		case e.Msg == "spool-api stopped":
			l.Exiting = e.Time
			t := true
			l.Clean = &t
		}
		if e.Level == "ERROR" {
			l.Errors++
		}
	}
	return l
}

type phase struct {
	name       string
	start, end time.Time
}

func readPhases(path string) ([]phase, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []phase
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		s, err1 := strconv.ParseFloat(f[1], 64)
		e, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, phase{f[0], unixF(s), unixF(e)})
	}
	return out, nil
}

func unixF(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }

// phaseOf names the step a deletion at t fell in. t is exact when it comes
// from the worker's log ("worker stopping"), else from deletionTimestamp,
// which is truncated to the second: then the phase may have started up to a
// second after t. The latest-starting match wins.
func phaseOf(phases []phase, t time.Time, exact bool) string {
	slack := time.Second
	if exact {
		slack = 0
	}
	best := "other"
	var bestStart time.Time
	for _, p := range phases {
		if t.Before(p.start.Add(-slack)) || t.After(p.end.Add(500*time.Millisecond)) {
			continue
		}
		if best == "other" || p.start.After(bestStart) {
			best, bestStart = p.name, p.start
		}
	}
	return best
}

// cmdPods checks every pod of the release from the watch stream, the
// containerd exit events and the followed logs:
//   - a pod deleted with a grace period (scale-down, rollout, upgrade,
//     uninstall) exited 0 before its deadline, and a worker logged a clean
//     shutdown with no job handed back or cut off;
//   - no container restarted; the migration and test pods exited 0;
//   - the force-deleted pod is reported as it is.
func cmdPods(args []string) error {
	fs := flag.NewFlagSet("pods", flag.ExitOnError)
	watch := fs.String("watch", "", "pod watch stream file")
	exitsFile := fs.String("exits", "", "`ctr events` output (optional: node-level exit statuses)")
	logs := fs.String("logs", "", "directory of <pod>.log files")
	phasesFile := fs.String("phases", "", "file of `name start end` lines (unix seconds) naming the script's steps")
	forced := fs.String("forced", "", "comma-separated pods deleted with --grace-period=0 --force")
	allGone := fs.Bool("all-deleted", true, "fail when a pod was never deleted")
	killed := fs.String("killed", "", "comma-separated pod names or UIDs whose main process the script killed once with SIGKILL (one container restart each is expected)")
	fs.Parse(args)
	pods, err := readWatch(*watch)
	if err != nil {
		return err
	}
	exits, err := readExits(*exitsFile)
	if err != nil {
		return err
	}
	phases, err := readPhases(*phasesFile)
	if err != nil {
		return err
	}
	forcedPods := map[string]bool{}
	for _, p := range splitList(*forced) {
		forcedPods[p] = true
	}
	killedPods := map[string]bool{}
	for _, p := range splitList(*killed) {
		killedPods[p] = true
	}
	list := make([]*podInfo, 0, len(pods))
	for _, p := range pods {
		list = append(list, p)
	}
	sort.Slice(list, func(i, k int) bool {
		if !list[i].Created.Equal(list[k].Created) {
			return list[i].Created.Before(list[k].Created)
		}
		return list[i].Name < list[k].Name
	})

	type agg struct {
		n, exit0, clean     int
		maxShutdown, grace  float64
		running, handedBack int
	}
	byPhase := map[string]*agg{}
	var phaseNames []string
	fmt.Printf("  %-34s %-8s %-16s %-9s %-22s %s\n", "pod", "comp", "deleted in", "grace", "exit (watch/containerd)", "shutdown (log)")
	for _, p := range list {
		exitStr, code, known := exitOf(p, exits)
		l := readLog(filepath.Join(*logs, p.Name+".log"))
		delPhase := "-"
		if !l.Stopping.IsZero() && p.HasDelete {
			delPhase = phaseOf(phases, l.Stopping, true)
		} else if p.HasDelete {
			delPhase = phaseOf(phases, p.DeleteAt, false)
		}
		forcedDel := p.HasDelete && p.DelGrace == 0
		shut := "-"
		if !l.Exiting.IsZero() && !l.Stopping.IsZero() {
			shut = fmt.Sprintf("%.2fs, %d running at SIGTERM", l.Exiting.Sub(l.Stopping).Seconds(), l.Running)
		} else if !l.Exiting.IsZero() && p.HasDelete {
			shut = fmt.Sprintf("%.2fs after delete", l.Exiting.Sub(p.DeleteAt).Seconds())
		}
		if l.Clean != nil {
			shut += fmt.Sprintf(" clean=%v", *l.Clean)
		}
		graceStr := "-"
		if p.HasDelete {
			graceStr = fmt.Sprintf("%ds", p.DelGrace)
		}
		fmt.Printf("  %-34s %-8s %-16s %-9s %-22s %s\n", p.Name, p.Component, delPhase, graceStr, exitStr, shut)

		if killedPods[p.Name] || killedPods[p.UID] {
			// Its container was SIGKILLed on purpose and the kubelet started
			// it again: one restart, and its log (followed once, from the
			// first container) cannot show the later shutdown.
			if p.Restarts != 1 {
				fail("%s: killed once with SIGKILL, but its container restarted %d time(s), want 1", p.Name, p.Restarts)
			} else {
				info("%s: main process killed with SIGKILL by the script; container restarted once (exit %s)", p.Name, exitStr)
			}
			continue
		}
		if p.Restarts > 0 {
			fail("%s: container restarted %d time(s)", p.Name, p.Restarts)
		}
		switch p.Component {
		case "migrate", "test":
			if !known || code != 0 {
				fail("%s (%s pod) exit %s, want 0", p.Name, p.Component, exitStr)
			}
			continue
		case "api", "worker":
		default:
			continue
		}
		noLog := !l.Found || !l.Started
		if noLog {
			// A pod that lives a second or two (a Deployment scaling its old
			// ReplicaSet up while a new one takes over) may be gone before
			// `kubectl logs -f` attaches. Its exit code is the evidence then:
			// spool-worker exits 0 only after a clean shutdown.
			if lived, ended := lifetime(p); ended && lived < 10 && known && code == 0 {
				info("%s ran only %.0fs and its log could not be attached; exit 0 stands for its clean shutdown (spool-worker exits non-zero otherwise)", p.Name, lived)
				l.Clean = new(bool)
				*l.Clean = true
			} else {
				fail("%s: log not captured from the start (%s)", p.Name, filepath.Join(*logs, p.Name+".log"))
			}
		}
		if !p.HasDelete {
			if *allGone {
				fail("%s was never deleted", p.Name)
			}
			continue
		}
		if forcedDel || forcedPods[p.Name] {
			if !forcedPods[p.Name] {
				fail("%s was force-deleted, but not by this script", p.Name)
			}
			how := "no exit status seen"
			if known {
				how = "exit " + exitStr
			}
			cleanStr := "no clean-exit line in its log"
			if l.Clean != nil {
				cleanStr = fmt.Sprintf("logged \"spool-worker exiting\" clean=%v %.2fs after the delete", *l.Clean, l.Exiting.Sub(p.DeleteAt).Seconds())
			}
			info("force-deleted %s (grace 0 requested): %s; %s", p.Name, how, cleanStr)
			continue
		}
		a := byPhase[delPhase+"/"+p.Component]
		if a == nil {
			a = &agg{}
			byPhase[delPhase+"/"+p.Component] = a
			phaseNames = append(phaseNames, delPhase+"/"+p.Component)
		}
		a.n++
		a.grace = float64(p.DelGrace)
		if !known {
			fail("%s: deleted with grace %ds but no exit status was recorded", p.Name, p.DelGrace)
		} else if code != 0 {
			fail("%s: exit %s after SIGTERM, want 0 (137 = SIGKILL)", p.Name, exitStr)
		} else {
			a.exit0++
		}
		if t := p.Terminated; t != nil {
			if t.FinishedAt.After(p.Deadline) {
				fail("%s: finished at %s, after its deadline %s (grace %ds)", p.Name, t.FinishedAt.Format(time.RFC3339), p.Deadline.Format(time.RFC3339), p.DelGrace)
			}
			a.maxShutdown = max(a.maxShutdown, t.FinishedAt.Sub(p.DeleteAt).Seconds())
		}
		if !l.Exiting.IsZero() {
			a.maxShutdown = max(a.maxShutdown, l.Exiting.Sub(p.DeleteAt).Seconds())
			if l.Exiting.After(p.Deadline) {
				fail("%s: logged its exit at %s, after its deadline %s", p.Name, l.Exiting.Format(time.RFC3339Nano), p.Deadline.Format(time.RFC3339))
			}
		}
		if l.Clean == nil || !*l.Clean {
			fail("%s: no clean shutdown in its log (want \"spool-%s exiting\" clean=true / \"spool-api stopped\")", p.Name, p.Component)
		} else {
			a.clean++
		}
		if l.Timeout || l.HandedBck > 0 {
			fail("%s: shutdown timeout reached / %d job(s) handed back: a job was cut off", p.Name, l.HandedBck)
		}
		a.running += l.Running
		a.handedBack += l.HandedBck
	}
	for _, k := range phaseNames {
		a := byPhase[k]
		ok("%s: %d pod(s) got SIGTERM: %d exited 0, %d shut down cleanly (log), slowest exit %.1fs after the delete (grace %.0fs); %d job(s) were running at SIGTERM and finished, %d handed back",
			k, a.n, a.exit0, a.clean, a.maxShutdown, a.grace, a.running, a.handedBack)
	}
	count := map[string]int{}
	for _, p := range list {
		count[p.Component]++
	}
	info("pods seen: %v", count)
	return nil
}

// exitOf reports the main container's exit code: the watch's terminated
// state, else containerd's exit event.
func exitOf(p *podInfo, exits map[string]int) (string, int, bool) {
	var parts []string
	code, known := 0, false
	if t := p.Terminated; t != nil {
		parts = append(parts, fmt.Sprintf("%d %s", t.ExitCode, t.Reason))
		code, known = t.ExitCode, true
	} else {
		parts = append(parts, "?")
	}
	for _, id := range p.IDs {
		if c, found := exits[id]; found {
			parts = append(parts, strconv.Itoa(c))
			if !known {
				code, known = c, true
			} else if c != code {
				code = max(code, c)
			}
		}
	}
	return strings.Join(parts, "/"), code, known
}
