package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// workflow is what the tables show of the API's workflow.
type workflow struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	CreatedAt  *time.Time `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Steps      []struct {
		Name          string          `json:"name"`
		JobID         int64           `json:"job_id"`
		Type          string          `json:"type"`
		Status        string          `json:"status"`
		Attempts      int             `json:"attempts"`
		DependsOn     []string        `json:"depends_on"`
		StartedAt     *time.Time      `json:"started_at"`
		FinishedAt    *time.Time      `json:"finished_at"`
		Result        json.RawMessage `json:"result"`
		ResultOmitted bool            `json:"result_omitted"`
		LastError     *string         `json:"last_error"`
	} `json:"steps"`
}

func (a *app) workflowsCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "workflows", Short: "Show, create and cancel workflows (DAGs of jobs)"})
	var file string
	create := &cobra.Command{
		Use:   "create --file workflow.json",
		Short: "Create a workflow from a JSON file (the body of POST /v1/workflows)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("give --file (- for stdin)")
			}
			b, err := a.readInput(file)
			if err != nil {
				return err
			}
			if !isObject(b) {
				return &failure{err: fmt.Errorf("%s: not a JSON object of one workflow", file)}
			}
			return a.workflowRequest(cmd, http.MethodPost, "/v1/workflows", json.RawMessage(b))
		}),
	}
	create.Flags().StringVar(&file, "file", "", "a JSON file of the workflow (- for stdin)")
	_ = create.MarkFlagFilename("file", "json")
	cmd.AddCommand(a.workflowIDCommand("get", "Show a workflow's steps: status, attempts, timings, last error", ""),
		a.workflowIDCommand("cancel", "Cancel every step that has not started (running steps finish)", "/cancel"), create)
	return cmd
}

func (a *app) workflowIDCommand(verb, short, suffix string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			method := http.MethodGet
			if suffix != "" {
				method = http.MethodPost
			}
			return a.workflowRequest(cmd, method, "/v1/workflows/"+strconv.FormatInt(id, 10)+suffix, nil)
		}),
	}
}

func (a *app) workflowRequest(cmd *cobra.Command, method, path string, body any) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	raw, err := c.do(cmd.Context(), method, path, nil, body)
	if err != nil {
		return err
	}
	if a.jsonOut() {
		return a.printMember(raw, "workflow")
	}
	var w workflow
	if err := decodeMember(raw, "workflow", &w); err != nil {
		return err
	}
	if err := keyValues(a.stdout, [][2]string{{"ID", strconv.FormatInt(w.ID, 10)}, {"Name", orDash(w.Name)},
		{"Status", w.Status}, {"Created", fmtTime(w.CreatedAt)}, {"Finished", fmtTime(w.FinishedAt)}}); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	t := newTable(a.stdout, "STEP", "JOB", "TYPE", "STATUS", "ATTEMPTS", "DEPENDS ON", "FINISHED", "RESULT / LAST ERROR")
	for _, s := range w.Steps {
		out := compactJSON(s.Result, 60)
		switch {
		case s.ResultOmitted:
			out = fmt.Sprintf("(left out: spool jobs get %d)", s.JobID)
		case s.LastError != nil && (s.Status != "completed" || len(s.Result) == 0):
			out = clip(*s.LastError, 60)
		}
		deps := strings.Join(s.DependsOn, ",")
		t.row(s.Name, strconv.FormatInt(s.JobID, 10), s.Type, s.Status, strconv.Itoa(s.Attempts), orDash(deps), fmtTime(s.FinishedAt), out)
	}
	return t.flush()
}
