package main

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// kind is what the table shows of GET /v1/kinds' entries.
type kind struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	MaxAttempts int      `json:"max_attempts"`
	Timeout     *string  `json:"timeout"`
	Workers     []string `json:"workers"`
	Open        bool     `json:"open"`
	Waiting     int64    `json:"waiting"`
	Unserved    bool     `json:"unserved"`
}

func (a *app) kindsCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "kinds", Short: "The kind catalog: the job types workers run"})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Every published kind with its policy, live workers and waiting jobs (JSON output has the payload schemas)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), "/v1/kinds", nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printMember(raw, "kinds")
			}
			var ks []kind
			if err := decodeMember(raw, "kinds", &ks); err != nil {
				return err
			}
			t := newTable(a.stdout, "NAME", "WORKERS", "WAITING", "UNSERVED", "MAX ATTEMPTS", "TIMEOUT", "DESCRIPTION")
			for _, k := range ks {
				attempts := "-"
				if k.MaxAttempts > 0 {
					attempts = strconv.Itoa(k.MaxAttempts)
				}
				workers := strconv.Itoa(len(k.Workers))
				if k.Open {
					workers += " (open)"
				}
				t.row(k.Name, workers, strconv.FormatInt(k.Waiting, 10), strconv.FormatBool(k.Unserved), attempts,
					ptrOrDash(k.Timeout), clip(orDash(k.Description), 60))
			}
			return t.flush()
		}),
	})
	return cmd
}

// completionTimeout bounds a completion's request: a shell waits for it.
const completionTimeout = 2 * time.Second

// completeNames completes with the names of path's list (under key),
// asked of the API; nothing when it cannot be asked.
func (a *app) completeNames(cmd *cobra.Command, path, key string, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c.timeout = completionTimeout
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	raw, err := c.get(ctx, path, url.Values{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var items []struct {
		Name string `json:"name"`
	}
	if decodeMember(raw, key, &items) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, it := range items {
		if strings.HasPrefix(it.Name, toComplete) {
			out = append(out, it.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) completeKinds(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return a.completeNames(cmd, "/v1/kinds", "kinds", toComplete)
}

func (a *app) completeQueues(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, "/v1/queues", "queues", toComplete)
}

func (a *app) completeSchedules(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeNames(cmd, "/v1/schedules", "schedules", toComplete)
}
