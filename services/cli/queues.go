package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

// queue is what the table shows of GET /v1/queues' entries.
type queue struct {
	Name         string           `json:"name"`
	Paused       bool             `json:"paused"`
	Counts       map[string]int64 `json:"counts"`
	OldestDueAge float64          `json:"oldest_pending_age_seconds"`
	Limit        *limit           `json:"limit"`
}

func (a *app) queuesCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "queues", Short: "List, pause and resume queues"})
	list := &cobra.Command{
		Use:   "list",
		Short: "Every queue with its pause state, depth by status, oldest due age and limit",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), "/v1/queues", nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printMember(raw, "queues")
			}
			var qs []queue
			if err := decodeMember(raw, "queues", &qs); err != nil {
				return err
			}
			t := newTable(a.stdout, "NAME", "PAUSED", "PENDING", "RUNNING", "RETRYING", "BLOCKED", "COMPLETED", "DEAD", "CANCELLED",
				"OLDEST DUE", "LIMIT")
			for _, q := range qs {
				n := func(s string) string { return strconv.FormatInt(q.Counts[s], 10) }
				lim := "-"
				if q.Limit != nil {
					lim = q.Limit.describe()
				}
				t.row(q.Name, strconv.FormatBool(q.Paused), n("pending"), n("running"), n("retrying"), n("blocked"), n("completed"),
					n("dead"), n("cancelled"), fmt.Sprintf("%.0fs", q.OldestDueAge), lim)
			}
			return t.flush()
		}),
	}
	cmd.AddCommand(list, a.pauseCommand("pause", "Stop claiming from a queue in every worker (running jobs finish)"),
		a.pauseCommand("resume", "Resume claiming from a paused queue"))
	return cmd
}

func (a *app) pauseCommand(verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " QUEUE",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeQueues,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodPost, "/v1/queues/"+url.PathEscape(args[0])+"/"+verb, nil, nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(raw)
			}
			var resp struct {
				Queue  string `json:"queue"`
				Paused bool   `json:"paused"`
			}
			if err := json.Unmarshal(raw, &resp); err != nil {
				return fmt.Errorf("unexpected answer: %w", err)
			}
			state := "resumed"
			if resp.Paused {
				state = "paused"
			}
			fmt.Fprintf(a.stdout, "queue %s %s\n", resp.Queue, state)
			return nil
		}),
	}
}

// printMember prints the array or object an answer wraps under key.
func (a *app) printMember(raw json.RawMessage, key string) error {
	m, err := member(raw, key)
	if err != nil {
		return err
	}
	return a.printJSON(m)
}
