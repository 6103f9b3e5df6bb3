package emailkind

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
)

func TestPayloadChecks(t *testing.T) {
	t.Parallel()
	kinds := jobqueue.NewKinds()
	(&sender{}).add(kinds)
	many := make([]string, MaxRecipients+1)
	for i := range many {
		many[i] = "a@example.com"
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct {
		name, payload, wantErr string // wantErr "": accepted
	}{
		{"single to", `{"to":"ada@example.com","subject":"hi","text":"x"}`, ""},
		{"list to, cc, html", `{"to":["Ada <ada@example.com>","b@example.com"],"cc":"c@example.com","subject":"hi","html":"<p>x</p>","reply_to":"r@example.com"}`, ""},
		{"no to", `{"subject":"hi","text":"x"}`, "to"},
		{"empty to list", `{"to":[],"subject":"hi","text":"x"}`, "to"},
		{"bad to", `{"to":"not an address","subject":"hi","text":"x"}`, "to[0]: not an email address"},
		{"bad second to", `{"to":["a@example.com","nope"],"subject":"hi","text":"x"}`, "to[1]"},
		{"bad cc", `{"to":"a@example.com","cc":["x"],"subject":"hi","text":"x"}`, "cc[0]"},
		{"bad reply_to", `{"to":"a@example.com","reply_to":"x","subject":"hi","text":"x"}`, "reply_to"},
		{"CRLF in address", `{"to":"a@example.com\r\nBcc: b@example.com","subject":"hi","text":"x"}`, "to[0]"},
		{"subject with LF", `{"to":"a@example.com","subject":"hi\nBcc: b@example.com","text":"x"}`, "subject: must be one line"},
		{"blank subject", `{"to":"a@example.com","subject":"  ","text":"x"}`, "subject is required"},
		{"long subject", `{"to":"a@example.com","subject":"` + strings.Repeat("s", MaxSubjectLen+1) + `","text":"x"}`, "subject"},
		{"no body", `{"to":"a@example.com","subject":"hi"}`, "text or html is required"},
		{"big text", `{"to":"a@example.com","subject":"hi","text":"` + strings.Repeat("t", MaxBodyBytes+1) + `"}`, "text: longer"},
		{"too many", `{"to":` + string(manyJSON) + `,"subject":"hi","text":"x"}`, "at most 50"},
		{"unknown field", `{"to":"a@example.com","subject":"hi","text":"x","bcc":"b@example.com"}`, "unknown field"},
		{"to a number", `{"to":1,"subject":"hi","text":"x"}`, "address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			known, err := kinds.Check("send_email", []byte(tc.payload))
			if !known {
				t.Fatal("send_email not registered")
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "example.com") {
				t.Errorf("error %q quotes an address", err)
			}
		})
	}
}

func TestSchemaTakesAddressOrList(t *testing.T) {
	t.Parallel()
	schema, err := jobqueue.SchemaOf(Email{})
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Required, ","); got != "to,subject" {
		t.Errorf("required %s, want to,subject", got)
	}
	to := string(s.Properties["to"])
	if !strings.Contains(to, `"oneOf"`) || !strings.Contains(to, `"array"`) || !strings.Contains(to, `"string"`) {
		t.Errorf("to's schema %s: want a string or an array of strings", to)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	const from = "Spool <noreply@mail.example.com>"
	for _, tc := range []struct {
		url, from, wantErr string
		host               string
		port               int
		implicit           bool
		user, pass         string
	}{
		{url: "smtp://user:p%40ss@smtp.example.com:2525", from: from, host: "smtp.example.com", port: 2525, user: "user", pass: "p@ss"},
		{url: "smtp://smtp.example.com", from: from, host: "smtp.example.com", port: 587},
		{url: "smtps://u:secret@smtp.example.com", from: from, host: "smtp.example.com", port: 465, implicit: true, user: "u", pass: "secret"},
		{url: "http://u:secret@smtp.example.com", from: from, wantErr: "scheme"},
		{url: "smtp://u:secret@:25", from: from, wantErr: "no host"},
		{url: "smtp://u:secret@smtp.example.com:99999", from: from, wantErr: "bad port"},
		{url: "smtp://u:secret@smtp.example.com/x?y=1", from: from, wantErr: "no path"},
		{url: "smtp://u:secret@smtp.example.com", wantErr: "SPOOL_SMTP_FROM is required"},
		{url: "smtp://u:secret@smtp.example.com", from: "nobody", wantErr: "SPOOL_SMTP_FROM is not"},
		{url: "smtp://u:secret@smtp.exa mple.com", from: from, wantErr: "not a URL"},
	} {
		srv, err := Settings{SMTPURL: tc.url, SMTPFrom: tc.from}.server()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.url, err, tc.wantErr)
			} else if strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error %q shows the password", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if srv.host != tc.host || srv.port != tc.port || srv.implicit != tc.implicit || srv.user != tc.user || srv.pass != tc.pass ||
			srv.domain != "mail.example.com" || strings.Contains(srv.redacted, "secret") {
			t.Errorf("%s: got %+v", tc.url, srv)
		}
	}
	if (Settings{}).Enabled() || (Settings{}).Check() != nil {
		t.Error("empty settings: want off, no error")
	}
	if got := MessageID(42, "mail.example.com"); got != "spool-job-42@mail.example.com" {
		t.Errorf("MessageID %s", got)
	}
}

// The API checks a payload against the schema the worker published (the
// catalog), without the kind's Validate: what that refuses at enqueue.
func TestCatalogRefusesAtEnqueue(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	client, err := jobqueue.NewClient(db.Pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := jobqueue.NewKinds()
	(&sender{}).add(kinds)
	ctx := context.Background()
	if err := client.PublishKinds(ctx, "test", kinds); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(client, nil)
	for _, tc := range []struct {
		name, payload string
		ok            bool
	}{
		{"single to", `{"to":"ada@example.com","subject":"hi","text":"x"}`, true},
		{"list to, html only", `{"to":["Ada <ada@example.com>","b@example.com"],"cc":"c@example.com","subject":"hi","html":"<p>x</p>"}`, true},
		{"no body", `{"to":"ada@example.com","subject":"hi"}`, false},
		{"empty text", `{"to":"ada@example.com","subject":"hi","text":""}`, false},
		{"subject with CRLF", `{"to":"ada@example.com","subject":"hi\r\nBcc: x@example.com","text":"x"}`, false},
		{"to without @", `{"to":"ada","subject":"hi","text":"x"}`, false},
		{"to with LF", `{"to":["ada@example.com\nBcc: x@example.com"],"subject":"hi","text":"x"}`, false},
		{"to an object", `{"to":{"a":1},"subject":"hi","text":"x"}`, false},
		{"bcc", `{"to":"ada@example.com","bcc":"b@example.com","subject":"hi","text":"x"}`, false},
	} {
		err := cat.Validate(ctx, "send_email", []byte(tc.payload))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
