package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/spoolq/spool/services/api/internal/openapi"
	"github.com/spoolq/spool/shared/diagnostic"
	"github.com/spoolq/spool/shared/emailkind"
	"github.com/spoolq/spool/shared/httpkind"
	"github.com/spoolq/spool/shared/jobqueue"
)

var update = flag.Bool("update", false, "rewrite openapi.json's stock kind schemas from the Go types, in canonical form")

// The stock kinds and their schemas' names in components.schemas.
var stockKinds = map[string]string{
	"http": "HttpPayload", "send_email": "SendEmailPayload",
	"noop": "NoopPayload", "sleep": "SleepPayload", "fail": "FailPayload",
}

// published is every stock kind's payload schema as its workers publish it:
// registered the way the worker registers them (jobqueue.AddKind), read
// back as the catalog gets them (Kinds.Infos).
func published(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	kinds := jobqueue.NewKinds()
	diagnostic.Add(kinds)
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, httpkind.Request) error { return nil }, nil)
	jobqueue.AddKind(kinds, func(context.Context, *jobqueue.Job, emailkind.Email) error { return nil }, nil)
	out := map[string]json.RawMessage{}
	for _, k := range kinds.Infos() {
		out[k.Name] = k.Schema
	}
	return out
}

// decode reads JSON keeping numbers as written (int64 bounds do not
// survive float64).
func decode(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

// canonical is the file's one form: keys sorted, two-space indent, no
// HTML escaping, a final newline; -update writes it.
func canonical(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The embedded schemas of the stock kinds are the ones their Go types
// publish, so a generated client types the payloads the API will accept.
func TestStockKindSchemas(t *testing.T) {
	doc := decode(t, openapi.Document).(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for kind, raw := range published(t) {
		name, ok := stockKinds[kind]
		if !ok {
			t.Fatalf("kind %q has no schema name in the document's list", kind)
		}
		want := decode(t, raw).(map[string]any)
		want["x-spool-kind"] = kind
		if *update {
			schemas[name] = want
			continue
		}
		if !reflect.DeepEqual(schemas[name], want) {
			t.Errorf("components.schemas.%s is not what kind %s publishes (go test -run TestStockKindSchemas -update rewrites it):\n got %s\nwant %s",
				name, kind, canonical(t, schemas[name]), canonical(t, want))
		}
	}
	if *update {
		if err := os.WriteFile("openapi.json", canonical(t, doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The file is in canonical form, so that -update rewrites only what
// changed and reviews see small diffs.
func TestDocumentIsCanonical(t *testing.T) {
	if *update {
		t.Skip("rewritten by TestStockKindSchemas")
	}
	if got := canonical(t, decode(t, openapi.Document)); !bytes.Equal(got, openapi.Document) {
		t.Errorf("openapi.json is not in canonical form (sorted keys, two-space indent): go test -run TestStockKindSchemas -update rewrites it")
	}
}

// The document is a valid OpenAPI 3.1 document by the OpenAPI schema
// itself (the linter, make openapi-lint, checks the rest).
func TestDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc, err := libopenapi.NewDocument(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v[:3] != "3.1" {
		t.Errorf("openapi version %s, want 3.1", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%v", e)
			for _, f := range e.SchemaValidationErrors {
				t.Errorf("  %v", f)
			}
		}
	}
}
