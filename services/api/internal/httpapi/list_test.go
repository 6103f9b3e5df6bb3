package httpapi_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/spoolq/spool/services/api/internal/httpapi"
	"github.com/spoolq/spool/shared/jobqueue"
)

// A list leaves each job's payload, error history and result out unless
// include names them, so a page's size does not depend on what clients
// stored; with them, a page holds only as many jobs as fit the response's
// byte budget at their largest.
func TestListLeavesLargeFieldsOutUnlessAsked(t *testing.T) {
	t.Parallel()
	f := setup(t, &httpapi.Opts{MaxPayloadBytes: 4 << 20})
	for range 6 {
		id := f.enqueue(jobqueue.EnqueueParams{Kind: "send_email", Payload: map[string]string{"to": "a@b.c", "subject": "s", "body": strings.Repeat("x", 1000)}})
		f.exec(makeDead, id)
	}
	fields := func(path string) []map[string]json.RawMessage {
		t.Helper()
		return mustStatus[struct{ Jobs []map[string]json.RawMessage }](t, f.do("GET", path, ""), 200).Jobs
	}
	brief := fields("/v1/jobs")
	if len(brief) != 6 {
		t.Fatalf("listed %d jobs, want 6", len(brief))
	}
	for _, j := range brief {
		if j["payload"] != nil || j["errors"] != nil || j["last_error"] == nil || j["type"] == nil {
			t.Fatalf("brief list entry %v: want no payload or errors, but last_error and type", keys(j))
		}
	}
	// At most 4 MiB payloads: 16 MiB holds 3 jobs a page.
	page := mustStatus[struct {
		Jobs      []map[string]json.RawMessage
		NextAfter *int64 `json:"next_after"`
	}](t, f.do("GET", "/v1/jobs?include=payload,errors&limit=10", ""), 200)
	if len(page.Jobs) != 3 || page.NextAfter == nil {
		t.Fatalf("full page: %d jobs, next_after %v; want 3 and a cursor", len(page.Jobs), page.NextAfter)
	}
	for _, j := range page.Jobs {
		if !strings.Contains(string(j["payload"]), "xxxx") || !strings.Contains(string(j["errors"]), "attempt") || j["result"] != nil {
			t.Fatalf("included fields: payload %.40s errors %.40s result %s", j["payload"], j["errors"], j["result"])
		}
	}
	if e := mustStatus[map[string]any](t, f.do("GET", "/v1/jobs?include=secrets", ""), 400); e["field"] != "include" {
		t.Fatalf("unknown include: %v", e)
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A payload of "<" is answered as it is, not HTML-escaped to six times its
// size.
func TestAnswersAreNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	id := f.enqueue(jobqueue.EnqueueParams{Kind: "send_email", Payload: map[string]string{"to": "a@b.c", "subject": "s", "body": strings.Repeat("<", 10000)}})
	w := f.do("GET", "/v1/jobs/"+strconv.FormatInt(id, 10), "")
	if w.Code != 200 || w.Body.Len() > 12000 || strings.Contains(w.Body.String(), `\u003c`) {
		t.Fatalf("answer %d, %d bytes (10,000 of them '<'), escaped: %v", w.Code, w.Body.Len(), strings.Contains(w.Body.String(), `\u003c`))
	}
}
