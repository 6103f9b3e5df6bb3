package main

import (
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// app is one invocation: its streams, global flags and, once a command
// needs it, the API client.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	configPath string
	apiURL     string
	token      string
	output     string
	timeout    time.Duration
}

// rootCommand builds the command tree.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "spool",
		Short: "Spool's command-line tool: jobs, dead letters, queues, limits, schedules, workflows and migrations",
		Long: `spool talks to Spool's HTTP API (SPOOL_API_URL, default http://127.0.0.1:8080) with the
bearer token SPOOL_API_TOKEN, or those of a config file ($XDG_CONFIG_HOME/spool/config.json, or
--config). "spool migrate" talks to the database itself (SPOOL_DATABASE_URL).

Output is a table for people, or with -o json the API's JSON for scripts (a list as an array,
one object as the object). Exit codes: 0 ok, 1 the API answered an error or a check failed,
2 usage or configuration error, 3 the API (or database) cannot be reached, 4 not found (404).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("--output must be table or json, not %q", a.output)
			}
			if a.timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", "", "config file (default $XDG_CONFIG_HOME/spool/config.json)")
	pf.StringVar(&a.apiURL, "api-url", "", "API base URL (default $SPOOL_API_URL, the config file's api_url, or http://127.0.0.1:8080)")
	pf.StringVar(&a.token, "token", "", "API bearer token (default $SPOOL_API_TOKEN or the config file's token); prefer the environment, as flags show in ps")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "deadline of each request")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })

	root.AddCommand(a.jobsCommand(), a.deadCommand(), a.queuesCommand(), a.limitsCommand(), a.schedulesCommand(),
		a.workflowsCommand(), a.kindsCommand(), a.migrateCommand(), a.versionCommand())
	return root
}

// group is a command that only holds subcommands: alone it prints its
// help; with an argument no subcommand matched, it is a usage error
// (cobra would print the help and exit 0).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], c.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return cmd
}

// action wraps a command's work: an error it does not classify itself is
// a failure (exit 1), not a usage error.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue *usageError
		if err != nil && exitCode(err) == exitUsage && !errors.As(err, &ue) {
			return &failure{err: err}
		}
		return err
	}
}
