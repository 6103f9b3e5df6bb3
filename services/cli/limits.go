package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// limit is the API's limit: a queue's, a type's or a host's.
type limit struct {
	Scope         string   `json:"scope"`
	Name          string   `json:"name"`
	MaxRunning    *int     `json:"max_running"`
	RatePerSecond *float64 `json:"rate_per_second"`
	Burst         int      `json:"burst"`
}

func (l limit) describe() string {
	var parts []string
	if l.MaxRunning != nil {
		parts = append(parts, fmt.Sprintf("max %d running", *l.MaxRunning))
	}
	if l.RatePerSecond != nil {
		parts = append(parts, fmt.Sprintf("%g/s burst %d", *l.RatePerSecond, l.Burst))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

var limitScopes = []string{"queue", "type", "host"}

func (a *app) limitsCommand() *cobra.Command {
	list := a.limitsListCommand()
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "Cluster-wide concurrency and rate limits of queues, types and hosts (alone: list them)",
		Args:  list.Args,
		RunE:  list.RunE,
	}
	cmd.AddCommand(list, a.limitSetCommand(), a.limitDeleteCommand())
	return cmd
}

func (a *app) limitsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every limit",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), "/v1/limits", nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printMember(raw, "limits")
			}
			var ls []limit
			if err := decodeMember(raw, "limits", &ls); err != nil {
				return err
			}
			t := newTable(a.stdout, "SCOPE", "NAME", "MAX RUNNING", "RATE/S", "BURST")
			for _, l := range ls {
				t.row(l.Scope, l.Name, ptrOrDash(l.MaxRunning), ptrOrDash(l.RatePerSecond), strconv.Itoa(l.Burst))
			}
			return t.flush()
		}),
	}
}

func limitPath(scope, name string) (string, error) {
	if !strings.Contains(" "+strings.Join(limitScopes, " ")+" ", " "+scope+" ") {
		return "", usagef("scope must be one of %s, not %q", strings.Join(limitScopes, ", "), scope)
	}
	return "/v1/limits/" + scope + "/" + url.PathEscape(name), nil
}

func (a *app) limitSetCommand() *cobra.Command {
	var (
		maxRunning int
		rate       float64
		burst      int
	)
	cmd := &cobra.Command{
		Use:   "set SCOPE NAME",
		Short: "Create or replace the limit of a queue, type or host (SCOPE: queue, type or host)",
		Example: `  spool limits set queue emails --max-running 5
  spool limits set type send_email --rate 10 --burst 20
  spool limits set host api.example.com --rate 2`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeScope,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			path, err := limitPath(args[0], args[1])
			if err != nil {
				return err
			}
			body := map[string]any{}
			fl := cmd.Flags()
			if fl.Changed("max-running") {
				body["max_running"] = maxRunning
			}
			if fl.Changed("rate") {
				body["rate_per_second"] = rate
			}
			if fl.Changed("burst") {
				body["burst"] = burst
			}
			if len(body) == 0 {
				return usagef("give --max-running, --rate or both")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodPut, path, nil, body)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printMember(raw, "limit")
			}
			var l limit
			if err := decodeMember(raw, "limit", &l); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s: %s\n", l.Scope, l.Name, l.describe())
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&maxRunning, "max-running", 0, "most jobs running at once in the whole cluster (not for a host)")
	fl.Float64Var(&rate, "rate", 0, "most starts (for a host: requests) per second")
	fl.IntVar(&burst, "burst", 0, "starts allowed at once above the rate (default 1)")
	return cmd
}

func (a *app) limitDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "delete SCOPE NAME",
		Short:             "Remove the limit of a queue, type or host",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeScope,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			path, err := limitPath(args[0], args[1])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodDelete, path, nil, nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(raw)
			}
			fmt.Fprintf(a.stdout, "deleted the limit of %s %s\n", args[0], args[1])
			return nil
		}),
	}
}

func completeScope(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return limitScopes, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}
