package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func (a *app) deadCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "dead", Short: "The dead-letter queue: list, retry and purge dead jobs"})
	cmd.AddCommand(a.jobsListCommand("list", "dead", "List dead jobs, newest first"),
		a.deadActionCommand("retry", "Put matching dead jobs back to pending (and revive the workflows they failed)"),
		a.deadActionCommand("purge", "Delete matching dead jobs"))
	return cmd
}

// deadFilter selects dead jobs; --all must be given to select every one,
// as both actions touch every dead job otherwise.
type deadFilter struct {
	id          int64
	kind, queue string
	all         bool
}

func (f deadFilter) empty() bool { return f.id == 0 && f.kind == "" && f.queue == "" }

func (a *app) deadActionCommand(verb, short string) *cobra.Command {
	var f deadFilter
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Long:  short + ". Give --id, --type or --queue (together: jobs matching all), or --all for every dead job.",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			switch {
			case f.empty() && !f.all:
				return usagef("give --id, --type or --queue, or --all for every dead job")
			case !f.empty() && f.all:
				return usagef("--all selects every dead job: give it without --id, --type or --queue")
			case f.id < 0:
				return usagef("--id must be a positive job id")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var (
				raw json.RawMessage
				key = "retried"
			)
			if verb == "retry" {
				body := map[string]any{}
				if f.id > 0 {
					body["id"] = f.id
				}
				if f.kind != "" {
					body["type"] = f.kind
				}
				if f.queue != "" {
					body["queue"] = f.queue
				}
				raw, err = c.do(cmd.Context(), http.MethodPost, "/v1/dead/retry", nil, body)
			} else {
				key = "deleted"
				q := url.Values{}
				if f.id > 0 {
					q.Set("id", strconv.FormatInt(f.id, 10))
				}
				if f.kind != "" {
					q.Set("type", f.kind)
				}
				if f.queue != "" {
					q.Set("queue", f.queue)
				}
				if f.all {
					q.Set("all", "true")
				}
				raw, err = c.do(cmd.Context(), http.MethodDelete, "/v1/dead", q, nil)
			}
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(raw)
			}
			var n int64
			if err := decodeMember(raw, key, &n); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %d dead jobs\n", key, n)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.Int64Var(&f.id, "id", 0, "only this job")
	fl.StringVar(&f.kind, "type", "", "only jobs of this type")
	fl.StringVar(&f.queue, "queue", "", "only jobs in this queue")
	fl.BoolVar(&f.all, "all", false, "every dead job")
	return cmd
}
