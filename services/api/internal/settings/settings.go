// Package settings reads the API service's configuration from the
// environment.
package settings

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/config"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/postgres"
)

// Config is everything the API reads at start-up.
type Config struct {
	config.Common

	HTTPAddr          string        `envconfig:"HTTP_ADDR" default:":8080" desc:"listen address of the API (/v1)"`
	MaxPayloadBytes   int64         `envconfig:"MAX_PAYLOAD_BYTES" default:"1048576" desc:"largest job payload (and single-job request body, plus 64 KiB for the other fields)"`
	MaxResponseBytes  int64         `envconfig:"MAX_RESPONSE_BYTES" default:"16777216" desc:"most bytes of payloads, results and error histories one answer carries (a list page with include=, a workflow's step results, the schedules list); the rest are left out and marked"`
	MaxBatch          int           `envconfig:"MAX_BATCH" default:"1000" desc:"most jobs in one POST /v1/jobs/batch"`
	MaxBatchBytes     int64         `envconfig:"MAX_BATCH_BYTES" default:"8388608" desc:"largest POST /v1/jobs/batch request body"`
	RequestTimeout    time.Duration `envconfig:"REQUEST_TIMEOUT" default:"10s" desc:"deadline of each request's database work; past it the request answers 503"`
	MaxSchedules      int           `envconfig:"MAX_SCHEDULES" default:"1000" desc:"most schedules that may exist; PUT of a new one past it is refused (409), replacing one is not; every worker checks every schedule each second"`
	MaxInFlight       int           `envconfig:"MAX_INFLIGHT" default:"0" desc:"most /v1 requests served at once; more wait up to SPOOL_INFLIGHT_WAIT for a slot, then are answered 429 with Retry-After; 0 means 8 times the database pool size"`
	InFlightWait      time.Duration `envconfig:"INFLIGHT_WAIT" default:"250ms" desc:"how long a request past SPOOL_MAX_INFLIGHT waits for a slot before its 429 (0: none)"`
	MaxConns          int           `envconfig:"MAX_CONNS" default:"512" desc:"most connections open on the API listener; at the limit a new one closes the connection that has waited longest for a request (a header still arriving, or idle), or is answered 503 if every one is serving; 0 means no limit"`
	MaxHeaderBytes    int           `envconfig:"MAX_HEADER_BYTES" default:"16384" desc:"largest request header (net/http allows 4 KiB more); larger is answered 431"`
	BodyTimeout       time.Duration `envconfig:"BODY_TIMEOUT" default:"10s" desc:"time to receive a request body, read before the request takes an in-flight slot; past it the request answers 408"`
	MaxBuffered       int64         `envconfig:"MAX_BUFFERED_BYTES" default:"67108864" desc:"request bodies read ahead of their in-flight slot plus answers waiting to be written after it, in all; a request past it answers 429; at least the largest body (SPOOL_MAX_BATCH_BYTES, SPOOL_MAX_PAYLOAD_BYTES plus 64 KiB)"`
	DrainDelay        time.Duration `envconfig:"DRAIN_DELAY" default:"5s" desc:"on SIGTERM, how long /readyz fails before the listener closes, so load balancers stop sending requests"`
	ShutdownTimeout   time.Duration `envconfig:"HTTP_SHUTDOWN_TIMEOUT" default:"10s" desc:"after the drain delay, how long in-flight requests may finish"`
	StatsInterval     time.Duration `envconfig:"STATS_INTERVAL" default:"15s" desc:"how often the queue-depth gauges (spool_queue_jobs) are refreshed, by one query"`
	StatsMaxAge       time.Duration `envconfig:"STATS_MAX_AGE" default:"2s" desc:"how old the counts of /v1/stats, /v1/queues, /v1/kinds and the gauges may be: one count of the jobs table serves every reader in that time (0: count on every request)"`
	HTTPAllowedHosts  string        `envconfig:"HTTP_ALLOWED_HOSTS" desc:"the workers' allow list of the http kind (hosts, host:port, CIDRs), to refuse a job whose destination it does not allow with 422 at enqueue; empty: the workers check alone, when they connect"`
	HTTPHeaderKey     string        `envconfig:"HTTP_HEADER_KEY" desc:"the workers' key that seals the http kind's secret header values (Authorization, Cookie, SPOOL_HTTP_SECRET_HEADERS): the API seals them before writing the job, so the database and every answer hold only ciphertext; empty: an http job with a secret header is refused with 422"`
	HTTPSecretHeaders string        `envconfig:"HTTP_SECRET_HEADERS" desc:"the workers' extra secret header names of the http kind (comma-separated), sealed like Authorization"`
	OpenKinds         string        `envconfig:"OPEN_KINDS" desc:"comma-separated kinds accepted without a worker's published schema (any JSON object payload), or * for every kind"`
	Demo              bool          `envconfig:"DEMO" default:"false" desc:"serve the order demo's routes (/v1/orders, /v1/products) and migrate its tables (examples/orders)"`
	AuthDisabled      bool          `envconfig:"AUTH_DISABLED" default:"false" desc:"serve /v1 without authentication (local use only)"`
	APITokens         string        `envconfig:"API_TOKENS" desc:"comma-separated bearer tokens as token:scope, scope ro or rw"`

	// Tokens is APITokens parsed.
	Tokens []httpapi.Token `ignored:"true"`
	// Open is OpenKinds split.
	Open []string `ignored:"true"`
}

// ErrHelp is returned by Load after printing the variables for -h.
var ErrHelp = config.ErrHelp

// Load reads the environment into a Config and checks its values; errors
// name the offending variable. With -h in args it prints every variable with
// its default to out and returns ErrHelp.
func Load(args []string, out io.Writer) (Config, error) {
	var c Config
	if err := config.Load(&c, args, out); err != nil {
		return c, err
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

func (c *Config) validate() error {
	var errs []error
	positive := func(name string, ok bool) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s_%s must be positive", config.Prefix, name))
		}
	}
	positive("MAX_PAYLOAD_BYTES", c.MaxPayloadBytes > 0)
	if _, err := httpkind.EnqueueCheck(c.HTTPKind(), nil); err != nil {
		errs = append(errs, err)
	}
	if c.MaxResponseBytes < c.MaxPayloadBytes {
		errs = append(errs, fmt.Errorf("%s_MAX_RESPONSE_BYTES (%d) must be at least %s_MAX_PAYLOAD_BYTES (%d): a job's own answer carries its payload",
			config.Prefix, c.MaxResponseBytes, config.Prefix, c.MaxPayloadBytes))
	}
	positive("MAX_BATCH", c.MaxBatch > 0)
	positive("MAX_BATCH_BYTES", c.MaxBatchBytes > 0)
	positive("MAX_SCHEDULES", c.MaxSchedules > 0)
	positive("REQUEST_TIMEOUT", c.RequestTimeout > 0)
	positive("HTTP_SHUTDOWN_TIMEOUT", c.ShutdownTimeout > 0)
	positive("DB_MAX_CONNS", c.DBMaxConns > 0)
	positive("STATS_INTERVAL", c.StatsInterval > 0)
	positive("BODY_TIMEOUT", c.BodyTimeout > 0)
	if c.MaxHeaderBytes < 1024 {
		errs = append(errs, errors.New("SPOOL_MAX_HEADER_BYTES must be at least 1024"))
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("SPOOL_MAX_CONNS must not be negative (0 means no limit)"))
	}
	if largest := max(c.MaxBatchBytes, c.MaxPayloadBytes+64<<10); c.MaxBuffered < largest {
		errs = append(errs, fmt.Errorf("SPOOL_MAX_BUFFERED_BYTES must be at least the largest request body, %d", largest))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, errors.New("SPOOL_MAX_INFLIGHT must not be negative (0 means 8 times the pool size)"))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, errors.New("SPOOL_DRAIN_DELAY must not be negative"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("SPOOL_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel))
	}
	if f := strings.ToLower(c.LogFormat); f != "json" && f != "text" {
		errs = append(errs, fmt.Errorf("SPOOL_LOG_FORMAT %q: want json or text", c.LogFormat))
	}
	if err := postgres.CheckSchemaName(c.DBSchema); err != nil {
		errs = append(errs, fmt.Errorf("SPOOL_DB_SCHEMA: %w", err))
	}
	for k := range strings.SplitSeq(c.OpenKinds, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if k != catalog.OpenAll && jobqueue.CheckKindName(k) != nil {
			errs = append(errs, fmt.Errorf("SPOOL_OPEN_KINDS: %q is not a kind name", k))
		}
		c.Open = append(c.Open, k)
	}
	tokens, err := httpapi.ParseTokens(c.APITokens)
	if err != nil {
		errs = append(errs, fmt.Errorf("SPOOL_API_TOKENS: %w", err))
	}
	c.Tokens = tokens
	return errors.Join(errs...)
}

// CheckAuth refuses an API that would be open by accident: serving needs
// tokens, or an explicit SPOOL_AUTH_DISABLED=true, and every token must be
// strong (checkTokenStrength: at least 32 characters, 8 different ones, not
// a repeated string). Errors name the token by position and scope, never by
// value. Migrating needs none of this.
func (c Config) CheckAuth() error {
	switch {
	case len(c.Tokens) == 0 && !c.AuthDisabled:
		return errors.New("no API tokens: set SPOOL_API_TOKENS (token:rw,token:ro) or, for local use only, SPOOL_AUTH_DISABLED=true")
	case len(c.Tokens) > 0 && c.AuthDisabled:
		return errors.New("SPOOL_API_TOKENS and SPOOL_AUTH_DISABLED=true are both set: choose one")
	}
	var errs []error
	for i, t := range c.Tokens {
		if err := checkTokenStrength(t.Secret); err != nil {
			errs = append(errs, fmt.Errorf("SPOOL_API_TOKENS: token %d (%s) %w; make one with `openssl rand -hex 24`", i+1, t.Scope, err))
		}
	}
	return errors.Join(errs...)
}

// HTTPKind is what the API needs of the http kind's settings.
func (c *Config) HTTPKind() httpkind.Settings {
	return httpkind.Settings{AllowedHosts: c.HTTPAllowedHosts, HeaderKey: c.HTTPHeaderKey, SecretHeaders: c.HTTPSecretHeaders}
}
