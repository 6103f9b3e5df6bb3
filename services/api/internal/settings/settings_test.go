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
		MaxPayloadBytes: 1 << 20, MaxBatch: 1000, MaxBatchBytes: 8 << 20, MaxSchedules: 1000, MaxResponseBytes: 16 << 20,
		RequestTimeout: 10 * time.Second, DrainDelay: 5 * time.Second, ShutdownTimeout: 10 * time.Second, StatsInterval: 15 * time.Second,
		MaxConns: 1024, MaxHeaderBytes: 16 << 10, BodyTimeout: 10 * time.Second, MaxBuffered: 64 << 20,
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
		{"header limit tiny", func(c *Config) { c.MaxHeaderBytes = 100 }, "SPOOL_MAX_HEADER_BYTES"},
		{"connection limit negative", func(c *Config) { c.MaxConns = -1 }, "SPOOL_MAX_CONNS"},
		{"connection limit off", func(c *Config) { c.MaxConns = 0 }, ""},
		{"body timeout zero", func(c *Config) { c.BodyTimeout = 0 }, "SPOOL_BODY_TIMEOUT"},
		{"http allow list malformed", func(c *Config) { c.HTTPAllowedHosts = "10.0.0.0/99" }, "SPOOL_HTTP_ALLOWED_HOSTS"},
		{"http allow list", func(c *Config) { c.HTTPAllowedHosts = "hooks.example, 10.0.0.0/8" }, ""},
		{"response budget below a payload", func(c *Config) { c.MaxResponseBytes = 1 << 10 }, "SPOOL_MAX_RESPONSE_BYTES"},
		{"buffer below a batch", func(c *Config) { c.MaxBuffered = 1 << 20 }, "SPOOL_MAX_BUFFERED_BYTES"},
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
		{disabled: false, tokens: goodToken + ":rw", wantErr: false},
		{disabled: false, tokens: "", wantErr: true},
		{disabled: true, tokens: goodToken + ":rw", wantErr: true},
		{disabled: false, tokens: "a:rw", wantErr: true},
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

// goodToken is what `openssl rand -hex 24` prints.
const goodToken = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c"

// TestTokenStrength: CheckAuth refuses short and repetitive tokens, naming
// the rule and the token's position but never the token.
func TestTokenStrength(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		secret string
		want   string // part of the error; "" means accepted
	}{
		{"hex 48", goodToken, ""},
		{"hex 32", "d4735e3a265e16eee03f59718b9b5d03", ""},
		{"chart generated", "Zq3v9LkP0sW1xYb7TnR2mC8dHf4gJ6aE5uVoQiKe", ""},
		{"one character", "Z", "is 1 characters, want at least 32"},
		{"31 characters", "d4735e3a265e16eee03f59718b9b5d0", "is 31 characters"},
		{"one letter repeated", strings.Repeat("a", 40), "uses 1 different characters"},
		{"few characters", strings.Repeat("0101201", 6), "uses 3 different characters"},
		{"repeated word", strings.Repeat("passw0rd!", 4), "repeats a 9-character string"},
		{"repeated hex", strings.Repeat("0123456789abcdef", 2), "repeats a 16-character string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			c.AuthDisabled, c.APITokens = false, "ab2f4c1e9d7b3a8f6e0c5d2b1a9f8e7d:ro,"+tc.secret+":rw"
			if err := c.validate(); err != nil {
				t.Fatal(err)
			}
			err := c.CheckAuth()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckAuth = %v, want nil", err)
			case tc.want == "":
				return
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("CheckAuth = %v, want an error containing %q", err, tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, "SPOOL_API_TOKENS: token 2 (rw)") || strings.Contains(msg, tc.secret) {
				t.Errorf("CheckAuth = %q: want it to name token 2 (rw) and not quote the token", msg)
			}
		})
	}
}
