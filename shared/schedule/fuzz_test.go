package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/jobqueue"
)

var fuzzFrom = time.Date(2026, 3, 29, 0, 59, 59, 999_999_999, time.UTC) // just before a DST switch in Europe

// FuzzParse: no spec or zone panics or hangs; a refusal wraps ErrInvalid;
// an accepted schedule only moves forward, by at least a second for
// @every, and due() terminates on it.
func FuzzParse(f *testing.F) {
	for _, seed := range []struct{ spec, tz string }{
		{"*/5 * * * *", ""},
		{"0 9 * * MON-FRI", "Europe/Berlin"},
		{"30 2 * * *", "America/New_York"},
		{"0 0 30 2 *", ""}, // never: February 30th
		{"0 0 29 2 *", "Australia/Lord_Howe"},
		{"@daily", "UTC"},
		{"@every 1s", ""},
		{"@every 2562047h47m16.854775807s", ""},
		{"@every 999ms", ""},
		{"@every -1s", ""},
		{"@every 1s ", ""},
		{"CRON_TZ=Asia/Tokyo 0 9 * * *", ""},
		{"TZ=", ""}, // cron v3.0.1 panicked: no space after the zone
		{"CRON_TZ=UTC\t@hourly", ""},
		{"TZ=../../etc/passwd * * * * *", ""},
		{"* * * * *", "../../../etc/passwd"},
		{"* * * * *", "Local"},
		{"* * * * *", "/etc/localtime"},
		{"1-59/0 * * * *", ""},
		{"0-59/1000000000000000000000 * * * *", ""},
		{"' OR 1=1; -- * * * *", ""},
		{"* * * * *\x00", ""},
		{"* * * * *", "UTC\x00"},
		{"\xff * * * *", ""},
	} {
		f.Add(seed.spec, seed.tz)
	}
	f.Fuzz(func(t *testing.T, spec, tz string) {
		c, err := Parse(spec, tz)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q, %q) = %v, want ErrInvalid", spec, tz, err)
			}
			return
		}
		if tz == "Local" {
			t.Fatal(`accepted time zone "Local", which is each process's own zone`)
		}
		next := c.Next(fuzzFrom)
		if next.IsZero() {
			return // a date that never comes
		}
		if !next.After(fuzzFrom) {
			t.Fatalf("Parse(%q, %q): next after %s is %s", spec, tz, fuzzFrom, next)
		}
		then := c.Next(next)
		if !then.IsZero() && !then.After(next) {
			t.Fatalf("Parse(%q, %q): next after %s is %s", spec, tz, next, then)
		}
		// @every ticks on whole seconds, so the first may come sooner.
		if strings.HasPrefix(spec, "@every ") && then.Sub(next) < time.Second {
			t.Fatalf("Parse(%q): ticks %s apart, want at least 1s", spec, then.Sub(next))
		}
		tick, ok := due(c, fuzzFrom, fuzzFrom.Add(2*time.Hour))
		if ok && (tick.After(fuzzFrom.Add(2*time.Hour)) || !tick.After(fuzzFrom)) {
			t.Fatalf("due(%q) = %s, outside (from, now]", spec, tick)
		}
	})
}

// FuzzValidate: Validate refuses with ErrInvalid or accepts a schedule
// whose every field the table takes, and validating it again changes
// nothing.
func FuzzValidate(f *testing.F) {
	f.Add("nightly", "0 2 * * *", "", "noop", []byte(nil), "", 0)
	f.Add("a.b-c_d", "@every 90s", "Europe/Berlin", "fail", []byte(`{"message":"m","times":1}`), "emails", -1000)
	f.Add("x", "@hourly", "UTC", "sleep", []byte(`{"ms":1}`), "default", 1001)
	f.Add("x'; DROP TABLE spool_schedules; --", "@hourly", "", "noop", []byte(`{}`), "", 0)
	f.Add("x", "@hourly", "", "noop", []byte(`{"seq":1}}`), "Q", 0)
	f.Add("x", "@hourly", "", "fail", []byte(`{"message":"<&>"}`), "", 0)
	f.Add(strings.Repeat("n", 129), "@hourly", "", "noop", []byte(nil), "", 0)
	f.Fuzz(func(t *testing.T, name, spec, tz, typ string, payload []byte, queue string, priority int) {
		s := Schedule{Name: name, Spec: spec, Timezone: tz, Type: typ, Payload: payload, Queue: queue, Priority: priority}
		if err := s.Validate(context.Background(), localKinds); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			return
		}
		checkStorable(t, &s)
		again := s
		if err := again.Validate(context.Background(), localKinds); err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("validating %+v again: %v, %+v; want no change", s, err, again)
		}
	})
}

// FuzzParseFile: a schedules file is refused or gives valid, uniquely
// named, file-sourced schedules that survive a round trip through JSON.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"schedules":[{"name":"a","spec":"@hourly","type":"noop"}]}`))
	f.Add([]byte(`{"schedules":[{"name":"a","spec":"0 9 * * 1-5","timezone":"Europe/Berlin","type":"send_email","payload":{"to":"a@example.com","subject":"s"},"queue":"emails","priority":5,"catch_up":true}]}`))
	f.Add([]byte(`{"schedules":[{"name":"a","spec":"@hourly","type":"noop"},{"name":"a","spec":"@daily","type":"noop"}]}`))
	f.Add([]byte(`{"schedules":[{"name":"a","spec":"@hourly","type":"noop","source":"api","last_tick":"2020-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"schedules":null}`))
	f.Add([]byte(`{"schedules":[null]}`))
	f.Add([]byte(`{"schedules":[{"priority":1e309}]}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Add([]byte("{\"schedules\":[{\"name\":\"\xff\"}]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseFile(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		seen := map[string]bool{}
		for i := range got {
			s := got[i]
			if seen[s.Name] || s.Source != "file" {
				t.Fatalf("schedule %d: name %q (seen: %v), source %q; want unique, from the file", i, s.Name, seen[s.Name], s.Source)
			}
			seen[s.Name] = true
			checkStorable(t, &s)
		}
		again, err := json.Marshal(File{Schedules: got})
		if err != nil {
			t.Fatal(err)
		}
		round, err := ParseFile(again)
		if err != nil || len(round) != len(got) {
			t.Fatalf("round trip of %s: %d schedules, %v; want %d", again, len(round), err, len(got))
		}
		for i := range round {
			if a, b := round[i], got[i]; a.Name != b.Name || a.Spec != b.Spec || a.Timezone != b.Timezone ||
				a.Type != b.Type || string(a.Payload) != string(b.Payload) || a.Queue != b.Queue || a.Priority != b.Priority || a.CatchUp != b.CatchUp {
				t.Fatalf("round trip changed schedule %d: %+v → %+v", i, b, a)
			}
		}
	})
}

// checkStorable fails unless s fits spool_schedules: PostgreSQL text is
// UTF-8 without U+0000, and the columns have their CHECKs.
func checkStorable(t *testing.T, s *Schedule) {
	t.Helper()
	for field, v := range map[string]string{"name": s.Name, "spec": s.Spec, "timezone": s.Timezone, "type": s.Type, "queue": s.Queue} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || v == "" {
			t.Fatalf("accepted %s %q, which the table cannot hold", field, v)
		}
	}
	if !nameRE.MatchString(s.Name) || jobqueue.CheckQueueName(s.Queue) != nil || s.Priority < -1000 || s.Priority > 1000 {
		t.Fatalf("accepted %+v, outside the table's bounds", s)
	}
	if !json.Valid(s.Payload) {
		t.Fatalf("accepted payload %q, not JSON", s.Payload)
	}
	if _, err := Parse(s.Spec, s.Timezone); err != nil {
		t.Fatalf("accepted spec %q in %q that does not parse again: %v", s.Spec, s.Timezone, err)
	}
}

// localKinds validates payloads against the kinds' Go types in memory, as the
// catalog validates them against their published schemas.
var localKinds = func() catalog.Local {
	k := jobqueue.NewKinds()
	diagnostic.Add(k)
	return catalog.Local{Kinds: k}
}()
