package jobs

import "time"

// Policy is a job type's defaults; a job's own settings at enqueue win, and
// the worker's global defaults fill what both leave unset.
type Policy struct {
	MaxAttempts int           // used by the API when the request gives none
	Timeout     time.Duration // the handler's deadline
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

var policies = map[string]Policy{
	"sleep":            {Timeout: MaxSleepMs*time.Millisecond + time.Minute},
	"send_email":       {MaxAttempts: 8, Timeout: 30 * time.Second, BackoffBase: 2 * time.Second, BackoffMax: 10 * time.Minute},
	"generate_invoice": {MaxAttempts: 5, Timeout: time.Minute},
	"sync_inventory":   {MaxAttempts: 10, Timeout: time.Minute, BackoffMax: 5 * time.Minute},
	"charge_payment":   {MaxAttempts: 6, Timeout: 30 * time.Second, BackoffBase: 500 * time.Millisecond, BackoffMax: time.Minute},
	"complete_order":   {MaxAttempts: 20, Timeout: 30 * time.Second, BackoffMax: time.Minute},
	"fail_order":       {MaxAttempts: 20, Timeout: 30 * time.Second, BackoffMax: time.Minute},
}

// PolicyOf returns typ's policy; zero fields mean "use the default".
func PolicyOf(typ string) Policy { return policies[typ] }

// MaxAttemptsOf returns typ's attempt limit, 0 when it has none of its own;
// it is what clients are given with SetTypeMaxAttempts.
func MaxAttemptsOf(typ string) int { return policies[typ].MaxAttempts }
