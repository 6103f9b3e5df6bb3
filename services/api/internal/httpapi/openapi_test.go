package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/spoolq/spool/services/api/internal/openapi"
	"github.com/spoolq/spool/shared/apiext"
	"github.com/spoolq/spool/shared/jobqueue"
)

// The document and the router have the same routes: a route added to one
// and not the other fails here. Routes an application adds (apiext, such
// as the order demo's /v1/orders with SPOOL_DEMO) are not the API's own
// and not in the document: they are told apart by their registration in
// Opts.Extensions, never by their paths.
func TestDocumentHasEveryRoute(t *testing.T) {
	t.Parallel()
	client, err := jobqueue.NewClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ext := apiext.Route{Method: http.MethodPost, Path: "/v1/orders", Handle: func(*http.Request, apiext.Request) (int, any, error) { return 200, nil, nil }}
	opts := &Opts{Extensions: []apiext.Route{ext}}
	extensions := map[string]bool{}
	for _, e := range opts.Extensions {
		extensions[e.Method+" "+e.Path] = true
	}

	var routed []string
	err = newAPI(client, opts).router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err1 := r.GetPathTemplate()
		methods, err2 := r.GetMethods()
		if err1 != nil || err2 != nil {
			t.Fatalf("route without a path template or methods: %v %v", err1, err2)
		}
		for _, m := range methods {
			if !extensions[m+" "+tmpl] {
				routed = append(routed, m+" "+tmpl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedRoutes(t)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("the router has %s, the OpenAPI document does not", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("the OpenAPI document has %s, the router does not", d)
		}
	}
	if len(routed) == 0 {
		t.Fatal("walked no routes")
	}
}

// documentedRoutes lists the document's operations as "METHOD /path".
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths {
		for key := range item {
			switch key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				out = append(out, strings.ToUpper(key)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// GET /v1/openapi.json serves the embedded document as it is, and only
// with a token when the API has tokens.
func TestServesDocument(t *testing.T) {
	t.Parallel()
	client, err := jobqueue.NewClient(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := New(client, &Opts{Tokens: []Token{{Secret: "ro-secret", Scope: ScopeRead}}})
	get := func(headers ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/openapi.json", nil)
		for _, kv := range headers {
			k, v, _ := strings.Cut(kv, ": ")
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := get(); rec.Code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", rec.Code)
	}
	rec := get("Authorization: Bearer ro-secret")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || !bytes.Equal(rec.Body.Bytes(), openapi.Document) {
		t.Errorf("with a read-only token: %d %q, %d bytes; want 200 application/json with the embedded document",
			rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}
