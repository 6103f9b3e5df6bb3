package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// job is what the tables show of the API's job.
type job struct {
	ID             int64           `json:"id"`
	Type           string          `json:"type"`
	Queue          string          `json:"queue"`
	Status         string          `json:"status"`
	Priority       int             `json:"priority"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	RunAt          *time.Time      `json:"run_at"`
	Timeout        *string         `json:"timeout"`
	IdempotencyKey *string         `json:"idempotency_key"`
	WorkerID       *string         `json:"worker_id"`
	LastError      *string         `json:"last_error"`
	Errors         []jobError      `json:"errors"`
	ErrorsDropped  int             `json:"errors_dropped"`
	Payload        json.RawMessage `json:"payload"`
	Result         json.RawMessage `json:"result"`
	WorkflowID     *int64          `json:"workflow_id"`
	Step           *string         `json:"step"`
	RequestID      *string         `json:"request_id"`
	CreatedAt      *time.Time      `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at"`
}

type jobError struct {
	Attempt  int        `json:"attempt"`
	Error    string     `json:"error"`
	At       *time.Time `json:"at"`
	WorkerID string     `json:"worker_id"`
}

var jobStatuses = []string{"pending", "running", "retrying", "completed", "dead", "cancelled", "blocked"}

func (a *app) jobsCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "jobs", Short: "List, show, enqueue, retry and cancel jobs"})
	cmd.AddCommand(a.jobsListCommand("list", "", "List jobs, newest first"), a.jobsGetCommand(),
		a.jobTransitionCommand("retry", "Put a dead or cancelled job back to pending (attempts reset, history kept)"),
		a.jobTransitionCommand("cancel", "Cancel a job that has not finished"),
		a.enqueueCommand())
	return cmd
}

// listFlags are the filters and paging of a job list.
type listFlags struct {
	status, kind, queue string
	include             []string
	limit               int
	after               int64
	all                 bool
}

// jobsListCommand is `jobs list`, and `dead list` with status fixed.
func (a *app) jobsListCommand(use, status, short string) *cobra.Command {
	f := listFlags{status: status}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

Pages are followed until --limit jobs are listed (or with --all until the last one): a page
filtered by type or queue may hold fewer jobs than asked. In table output a cursor to go on
from is printed on stderr when more jobs remain.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error { return a.listJobs(cmd, f) }),
	}
	fl := cmd.Flags()
	if status == "" {
		fl.StringVar(&f.status, "status", "", "only jobs in this status: "+strings.Join(jobStatuses, ", "))
		_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(jobStatuses, cobra.ShellCompDirectiveNoFileComp))
	}
	fl.StringVar(&f.kind, "type", "", "only jobs of this type")
	fl.StringVar(&f.queue, "queue", "", "only jobs in this queue")
	fl.StringSliceVar(&f.include, "include", nil, "large fields to include (JSON output): payload, errors, result")
	fl.IntVar(&f.limit, "limit", 50, "most jobs to list")
	fl.Int64Var(&f.after, "after", 0, "list jobs older than this id (a cursor from a previous list)")
	fl.BoolVar(&f.all, "all", false, "list every matching job (ignores --limit)")
	return cmd
}

// maxPage is the API's largest page.
const maxPage = 500

func (a *app) listJobs(cmd *cobra.Command, f listFlags) error {
	if f.limit < 1 && !f.all {
		return usagef("--limit must be at least 1")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var (
		jobs []json.RawMessage
		next = f.after
	)
	for {
		q := url.Values{}
		set := func(k, v string) {
			if v != "" {
				q.Set(k, v)
			}
		}
		set("status", f.status)
		set("type", f.kind)
		set("queue", f.queue)
		set("include", strings.Join(f.include, ","))
		page := maxPage
		if !f.all {
			page = min(maxPage, f.limit-len(jobs))
		}
		q.Set("limit", strconv.Itoa(page))
		if next > 0 {
			q.Set("after", strconv.FormatInt(next, 10))
		}
		raw, err := c.get(cmd.Context(), "/v1/jobs", q)
		if err != nil {
			return err
		}
		var resp struct {
			Jobs      []json.RawMessage `json:"jobs"`
			NextAfter *int64            `json:"next_after"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			return fmt.Errorf("unexpected answer: %w", err)
		}
		jobs = append(jobs, resp.Jobs...)
		next = 0
		if resp.NextAfter != nil {
			next = *resp.NextAfter
		}
		if next == 0 || (!f.all && len(jobs) >= f.limit) {
			break
		}
	}
	if jobs == nil {
		jobs = []json.RawMessage{}
	}
	if a.jsonOut() {
		return a.printValue(jobs)
	}
	t := newTable(a.stdout, "ID", "TYPE", "QUEUE", "STATUS", "PRI", "ATTEMPTS", "RUN AT", "LAST ERROR")
	for _, raw := range jobs {
		var j job
		if err := json.Unmarshal(raw, &j); err != nil {
			return fmt.Errorf("unexpected answer: %w", err)
		}
		t.row(strconv.FormatInt(j.ID, 10), j.Type, j.Queue, j.Status, strconv.Itoa(j.Priority),
			fmt.Sprintf("%d/%d", j.Attempts, j.MaxAttempts), fmtTime(j.RunAt), clip(ptrOrDash(j.LastError), 60))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if next > 0 {
		fmt.Fprintf(a.stderr, "more jobs: --after %d\n", next)
	}
	return nil
}

// parseID reads a job or workflow id argument; a malformed one is a usage
// error, not a request.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not an id (a positive integer)", s)
	}
	return id, nil
}

func (a *app) jobsGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one job with its payload, result and error history",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), "/v1/jobs/"+strconv.FormatInt(id, 10), nil)
			if err != nil {
				return err
			}
			return a.printJob(raw, true)
		}),
	}
}

// jobTransitionCommand is `jobs retry ID` and `jobs cancel ID`.
func (a *app) jobTransitionCommand(verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodPost, "/v1/jobs/"+strconv.FormatInt(id, 10)+"/"+verb, nil, nil)
			if err != nil {
				return err
			}
			return a.printJob(raw, false)
		}),
	}
}

// printJob prints the job of a {"job": {...}} answer: the object with -o
// json; in detail (every field, the history) or as a one-line table.
func (a *app) printJob(raw json.RawMessage, detail bool) error {
	obj, err := member(raw, "job")
	if err != nil {
		return err
	}
	if a.jsonOut() {
		return a.printJSON(obj)
	}
	var j job
	if err := json.Unmarshal(obj, &j); err != nil {
		return fmt.Errorf("unexpected answer: %w", err)
	}
	if !detail {
		t := newTable(a.stdout, "ID", "TYPE", "QUEUE", "STATUS", "ATTEMPTS", "RUN AT")
		t.row(strconv.FormatInt(j.ID, 10), j.Type, j.Queue, j.Status, fmt.Sprintf("%d/%d", j.Attempts, j.MaxAttempts), fmtTime(j.RunAt))
		return t.flush()
	}
	return a.printJobDetail(j)
}

func (a *app) printJobDetail(j job) error {
	pairs := [][2]string{
		{"ID", strconv.FormatInt(j.ID, 10)}, {"Type", j.Type}, {"Queue", j.Queue}, {"Status", j.Status},
		{"Priority", strconv.Itoa(j.Priority)}, {"Attempts", fmt.Sprintf("%d of %d", j.Attempts, j.MaxAttempts)},
		{"Run at", fmtTime(j.RunAt)}, {"Created", fmtTime(j.CreatedAt)}, {"Started", fmtTime(j.StartedAt)},
		{"Finished", fmtTime(j.FinishedAt)}, {"Timeout", ptrOrDash(j.Timeout)}, {"Idempotency key", ptrOrDash(j.IdempotencyKey)},
		{"Worker", ptrOrDash(j.WorkerID)}, {"Request", ptrOrDash(j.RequestID)},
	}
	if j.WorkflowID != nil {
		pairs = append(pairs, [2]string{"Workflow", fmt.Sprintf("%d (step %s)", *j.WorkflowID, ptrOrDash(j.Step))})
	}
	pairs = append(pairs, [2]string{"Payload", compactJSON(j.Payload, 2000)}, [2]string{"Result", compactJSON(j.Result, 2000)},
		[2]string{"Last error", ptrOrDash(j.LastError)})
	if err := keyValues(a.stdout, pairs); err != nil {
		return err
	}
	if len(j.Errors) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout, "\nErrors:")
	t := newTable(a.stdout, "ATTEMPT", "AT", "WORKER", "ERROR")
	for _, e := range j.Errors {
		t.row(strconv.Itoa(e.Attempt), fmtTime(e.At), orDash(e.WorkerID), clip(e.Error, 200))
	}
	if j.ErrorsDropped > 0 {
		t.row("…", "", "", fmt.Sprintf("%d older errors not kept", j.ErrorsDropped))
	}
	return t.flush()
}
