package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// schedule is what the tables show of the API's schedule.
type schedule struct {
	Name           string          `json:"name"`
	Spec           string          `json:"spec"`
	Timezone       string          `json:"timezone"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	PayloadOmitted bool            `json:"payload_omitted"`
	Queue          string          `json:"queue"`
	Priority       int             `json:"priority"`
	CatchUp        bool            `json:"catch_up"`
	Source         string          `json:"source"`
	LastTick       *time.Time      `json:"last_tick"`
	NextRun        *time.Time      `json:"next_run"`
	Created        *time.Time      `json:"created_at"`
}

func (a *app) schedulesCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "schedules", Short: "Recurring jobs: list, show, create or replace, delete"})
	cmd.AddCommand(a.schedulesListCommand(), a.scheduleGetCommand(), a.schedulePutCommand(), a.scheduleDeleteCommand())
	return cmd
}

func schedulePath(name string) string { return "/v1/schedules/" + url.PathEscape(name) }

func (a *app) schedulesListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Every schedule with its next run",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), "/v1/schedules", nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printMember(raw, "schedules")
			}
			var ss []schedule
			if err := decodeMember(raw, "schedules", &ss); err != nil {
				return err
			}
			t := newTable(a.stdout, "NAME", "SPEC", "TIMEZONE", "TYPE", "QUEUE", "NEXT RUN", "LAST TICK", "SOURCE")
			for _, s := range ss {
				t.row(s.Name, s.Spec, orDash(s.Timezone), s.Type, orDash(s.Queue), fmtTime(s.NextRun), fmtTime(s.LastTick), orDash(s.Source))
			}
			return t.flush()
		}),
	}
}

func (a *app) scheduleGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one schedule with its payload",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.get(cmd.Context(), schedulePath(args[0]), nil)
			if err != nil {
				return err
			}
			return a.printSchedule(raw)
		}),
	}
}

func (a *app) printSchedule(raw json.RawMessage) error {
	if a.jsonOut() {
		return a.printMember(raw, "schedule")
	}
	var s schedule
	if err := decodeMember(raw, "schedule", &s); err != nil {
		return err
	}
	return keyValues(a.stdout, [][2]string{
		{"Name", s.Name}, {"Spec", s.Spec}, {"Timezone", orDash(s.Timezone)}, {"Type", s.Type},
		{"Payload", compactJSON(s.Payload, 2000)}, {"Queue", orDash(s.Queue)}, {"Priority", strconv.Itoa(s.Priority)},
		{"Catch up", strconv.FormatBool(s.CatchUp)}, {"Source", orDash(s.Source)}, {"Next run", fmtTime(s.NextRun)},
		{"Last tick", fmtTime(s.LastTick)}, {"Created", fmtTime(s.Created)},
	})
}

func (a *app) schedulePutCommand() *cobra.Command {
	var (
		spec, tz, kind, payload, queue, file string
		priority                             int
		catchUp                              bool
	)
	cmd := &cobra.Command{
		Use:   "put NAME",
		Short: "Create or replace a schedule, from flags or a JSON file",
		Long: `Create or replace the schedule NAME from flags (--spec and --type at least) or from a JSON file
(--file, the body of PUT /v1/schedules/{name}; flags given with it set those fields).`,
		Example: `  spool schedules put nightly-report --spec '0 3 * * *' --timezone Europe/Paris --type report --payload '{"kind":"daily"}'
  spool schedules put heartbeat --spec '@every 1m' --type noop`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			body := map[string]json.RawMessage{}
			if file != "" {
				b, err := a.readInput(file)
				if err != nil {
					return err
				}
				if !isObject(b) || json.Unmarshal(b, &body) != nil {
					return &failure{err: fmt.Errorf("%s: not a JSON object of one schedule", file)}
				}
			}
			fl := cmd.Flags()
			set := func(flag, field string, v any) {
				if fl.Changed(flag) {
					body[field], _ = json.Marshal(v)
				}
			}
			set("spec", "spec", spec)
			set("timezone", "timezone", tz)
			set("type", "type", kind)
			set("queue", "queue", queue)
			set("priority", "priority", priority)
			set("catch-up", "catch_up", catchUp)
			if fl.Changed("payload") {
				if !isObject([]byte(payload)) {
					return usagef("--payload must be a JSON object")
				}
				body["payload"] = json.RawMessage(payload)
			}
			if file == "" && (!fl.Changed("spec") || !fl.Changed("type")) {
				return usagef("give --spec and --type (or --file)")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodPut, schedulePath(args[0]), nil, body)
			if err != nil {
				return err
			}
			return a.printSchedule(raw)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&spec, "spec", "", "when: 5-field cron ('0 3 * * *'), or @every 1m, @hourly, @daily…")
	fl.StringVar(&tz, "timezone", "", "IANA time zone of the spec (default UTC)")
	fl.StringVar(&kind, "type", "", "job type each tick enqueues")
	fl.StringVar(&payload, "payload", "", "payload of each job, a JSON object")
	fl.StringVar(&queue, "queue", "", "queue of each job (default: default)")
	fl.IntVar(&priority, "priority", 0, "priority of each job")
	fl.BoolVar(&catchUp, "catch-up", false, "run one job for ticks missed while no worker ran")
	fl.StringVar(&file, "file", "", "a JSON file of the schedule (- for stdin)")
	_ = cmd.MarkFlagFilename("file", "json")
	_ = cmd.RegisterFlagCompletionFunc("type", a.completeKinds)
	return cmd
}

func (a *app) scheduleDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete a schedule",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			raw, err := c.do(cmd.Context(), http.MethodDelete, schedulePath(args[0]), nil, nil)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(raw)
			}
			fmt.Fprintf(a.stdout, "deleted schedule %s\n", args[0])
			return nil
		}),
	}
}
