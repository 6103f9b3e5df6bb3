package settings

import (
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/shared/config"
)

func valid() Config {
	return Config{
		Common:          config.Common{DatabaseURL: "postgres://x", LogLevel: "info", LogFormat: "json", DBMaxConns: 10, DBSchema: "spool"},
		HTTPAddr:        ":8080",
		MaxPayloadBytes: 1 << 20, MaxBatch: 1000, MaxBatchBytes: 8 << 20, MaxSchedules: 1000,
		RequestTimeout: 10 * time.Second, DrainDelay: 5 * time.Second, ShutdownTimeout: 10 * time.Second, StatsInterval: 15 * time.Second,
		AuthDisabled: true,
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		change  func(*Config)
		wantErr string // a variable named in the error; "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero drain delay", func(c *Config) { c.DrainDelay = 0 }, ""},
		{"payload limit zero", func(c *Config) { c.MaxPayloadBytes = 0 }, "SPOOL_MAX_PAYLOAD_BYTES"},
		{"batch zero", func(c *Config) { c.MaxBatch = 0 }, "SPOOL_MAX_BATCH"},
		{"batch bytes negative", func(c *Config) { c.MaxBatchBytes = -1 }, "SPOOL_MAX_BATCH_BYTES"},
		{"schedule cap zero", func(c *Config) { c.MaxSchedules = 0 }, "SPOOL_MAX_SCHEDULES"},
		{"request timeout zero", func(c *Config) { c.RequestTimeout = 0 }, "SPOOL_REQUEST_TIMEOUT"},
		{"drain delay negative", func(c *Config) { c.DrainDelay = -time.Second }, "SPOOL_DRAIN_DELAY"},
		{"shutdown timeout zero", func(c *Config) { c.ShutdownTimeout = 0 }, "SPOOL_HTTP_SHUTDOWN_TIMEOUT"},
		{"pool size zero", func(c *Config) { c.DBMaxConns = 0 }, "SPOOL_DB_MAX_CONNS"},
		{"stats interval zero", func(c *Config) { c.StatsInterval = 0 }, "SPOOL_STATS_INTERVAL"},
		{"in-flight limit negative", func(c *Config) { c.MaxInFlight = -1 }, "SPOOL_MAX_INFLIGHT"},
		{"in-flight limit explicit", func(c *Config) { c.MaxInFlight = 64 }, ""},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "SPOOL_LOG_LEVEL"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "SPOOL_LOG_FORMAT"},
		{"tokens malformed", func(c *Config) { c.APITokens = "abc" }, "SPOOL_API_TOKENS"},
		{"tokens bad scope", func(c *Config) { c.APITokens = "abc:admin" }, "SPOOL_API_TOKENS"},
	}
	for _, tc := range cases {
		c := valid()
		tc.change(&c)
		err := c.validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: validate = %v, want nil", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: validate = %v, want an error naming %s", tc.name, err, tc.wantErr)
		}
	}
}

func TestCheckAuth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		disabled bool
		tokens   string
		wantErr  bool
	}{
		{disabled: true, tokens: "", wantErr: false},
		{disabled: false, tokens: "t:rw", wantErr: false},
		{disabled: false, tokens: "", wantErr: true},
		{disabled: true, tokens: "t:rw", wantErr: true},
	}
	for _, tc := range cases {
		c := valid()
		c.AuthDisabled, c.APITokens = tc.disabled, tc.tokens
		if err := c.validate(); err != nil {
			t.Fatal(err)
		}
		err := c.CheckAuth()
		if (err != nil) != tc.wantErr {
			t.Errorf("disabled=%v tokens=%q: CheckAuth = %v, want error %v", tc.disabled, tc.tokens, err, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "SPOOL_API_TOKENS") {
			t.Errorf("CheckAuth error %q does not name SPOOL_API_TOKENS", err)
		}
	}
}
