package workerapp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/shared/config"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

// Config is a worker process's configuration, read from SPOOL_* variables.
type Config struct {
	config.Common
	ListenURL        string        `envconfig:"LISTEN_DATABASE_URL" desc:"PostgreSQL URL for LISTEN only, when SPOOL_DATABASE_URL goes through a pooler in transaction mode (LISTEN needs a session); empty: the main URL"`
	WorkerID         string        `envconfig:"WORKER_ID" desc:"unique name of this process in the queue (default: hostname plus a random suffix)"`
	Concurrency      int           `envconfig:"CONCURRENCY" default:"10" desc:"jobs run at once when SPOOL_QUEUES names no concurrency"`
	Queues           string        `envconfig:"QUEUES" default:"default" desc:"queues to serve, each with its own concurrency: default:10,emails:5"`
	PollInterval     time.Duration `envconfig:"POLL_INTERVAL" default:"1s" desc:"claim this often even without a notification"`
	ShutdownTimeout  time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s" desc:"after SIGTERM, how long running jobs may finish before they are cancelled and handed back"`
	LeaseDuration    time.Duration `envconfig:"LEASE_DURATION" default:"30s" desc:"lease on a running job, renewed every third of it; a crashed worker's jobs are rescued after it runs out"`
	RescueInterval   time.Duration `envconfig:"RESCUE_INTERVAL" default:"15s" desc:"how often to return jobs with expired leases to the queue (0 turns the rescuer off in this process)"`
	JobTimeout       time.Duration `envconfig:"JOB_TIMEOUT" default:"5m" desc:"default handler deadline (per type and per job overrides win)"`
	BackoffBase      time.Duration `envconfig:"BACKOFF_BASE" default:"1s" desc:"first retry delay ceiling; doubles per attempt"`
	BackoffMax       time.Duration `envconfig:"BACKOFF_MAX" default:"1h" desc:"largest retry delay"`
	PruneInterval    time.Duration `envconfig:"PRUNE_INTERVAL" default:"1m" desc:"how often finished jobs past retention are deleted, in batches of 1000 (0 turns pruning off)"`
	RetainCompleted  time.Duration `envconfig:"RETENTION_COMPLETED" default:"24h" desc:"how long completed jobs are kept (0: forever)"`
	RetainCancelled  time.Duration `envconfig:"RETENTION_CANCELLED" default:"24h" desc:"how long cancelled jobs are kept (0: forever)"`
	RetainDead       time.Duration `envconfig:"RETENTION_DEAD" default:"168h" desc:"how long dead jobs are kept (0: forever)"`
	RetainEffects    time.Duration `envconfig:"RETENTION_EFFECTS" default:"168h" desc:"how long effect-ledger entries are kept (0: forever)"`
	SchedulesFile    string        `envconfig:"SCHEDULES_FILE" desc:"JSON file of recurring jobs, e.g. mounted from a ConfigMap; synced into the database at start"`
	ScheduleInterval time.Duration `envconfig:"SCHEDULE_INTERVAL" default:"1s" desc:"how often schedules are checked for due ticks (0 turns the scheduler off in this process)"`
}

// Load reads and checks the configuration, and the binary's own settings
// (structs with envconfig tags, SPOOL_ prefix) after it; with -h it prints
// them all and returns config.ErrHelp.
func Load(args []string, out io.Writer, extra ...any) (*Config, []jobqueue.QueueConfig, error) {
	var c Config
	if err := config.Load(&c, args, out, extra...); err != nil {
		return nil, nil, err
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s-%d", host, time.Now().UnixNano()%1_000_000)
	}
	queues, err := ParseQueues(c.Queues, c.Concurrency)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration: SPOOL_QUEUES: %w", err)
	}
	return &c, queues, c.check()
}

func (c *Config) check() error {
	var errs []error
	positive := map[string]time.Duration{"SPOOL_POLL_INTERVAL": c.PollInterval, "SPOOL_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"SPOOL_LEASE_DURATION": c.LeaseDuration, "SPOOL_JOB_TIMEOUT": c.JobTimeout, "SPOOL_BACKOFF_BASE": c.BackoffBase, "SPOOL_BACKOFF_MAX": c.BackoffMax}
	for name, d := range positive {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("configuration: %s must be positive", name))
		}
	}
	if err := postgres.CheckSchemaName(c.DBSchema); err != nil {
		errs = append(errs, fmt.Errorf("configuration: SPOOL_DB_SCHEMA: %w", err))
	}
	if c.Concurrency <= 0 {
		errs = append(errs, errors.New("configuration: SPOOL_CONCURRENCY must be positive"))
	}
	return errors.Join(errs...)
}

// ParseQueues reads "default:10,emails:5"; a queue without ":n" gets def.
func ParseQueues(s string, def int) ([]jobqueue.QueueConfig, error) {
	var out []jobqueue.QueueConfig
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, n, hasN := strings.Cut(strings.TrimSpace(part), ":")
		q := jobqueue.QueueConfig{Name: name, Concurrency: def}
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("queue %q: concurrency %q is not a positive number", name, n)
			}
			q.Concurrency = v
		}
		if err := jobqueue.CheckQueueName(name); err != nil {
			return nil, fmt.Errorf("queue name %q: use 1-64 of a-z 0-9 _ . -", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("queue %q listed twice", name)
		}
		seen[name] = true
		out = append(out, q)
	}
	return out, nil
}
