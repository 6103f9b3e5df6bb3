// Package httpapi is the API service's HTTP surface: the /v1 routes, their
// validation and error mapping, the middleware around them, and the server
// lifecycle (readiness and draining).
package httpapi

import (
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolq/spool/services/api/internal/openapi"
	"github.com/spoolq/spool/shared/apiext"
	"github.com/spoolq/spool/shared/catalog"
	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/schedule"
)

// Opts configures the router; nil or zero fields take the defaults noted.
type Opts struct {
	MaxPayloadBytes int64         // 1 MiB: largest payload, and single-job body (plus envelopeBytes)
	MaxBatch        int           // 1000: most jobs per batch
	MaxBatchBytes   int64         // 8 MiB: largest batch body
	RequestTimeout  time.Duration // 10s: deadline of a request's database work
	// MaxSchedules caps the schedules PUT /v1/schedules/{name} creates
	// (schedule.DefaultMaxSchedules, 1000); negative: no cap.
	MaxSchedules int
	// MaxInFlight bounds the /v1 requests served at once; more wait up to
	// InFlightWait for a slot, then are answered 429. Zero means 8 times
	// the client's pool size (no bound if it has no pool), negative no bound.
	MaxInFlight int
	// InFlightWait is how long a request waits for an in-flight slot (250
	// ms; negative: not at all), so that a burst of ordinary concurrency
	// queues briefly instead of being shed while the database has room.
	InFlightWait time.Duration
	// BodyTimeout bounds the time to receive a request's body, which is
	// read before the request takes an in-flight slot (408 past it); 10s.
	BodyTimeout time.Duration
	// MaxBufferedBytes bounds the request bodies read ahead of their slot
	// and the answers waiting to be written after it, in all (429 past
	// it); 64 MiB, negative no bound.
	MaxBufferedBytes int64
	// Catalog validates kinds and payloads; nil: the catalog of the
	// client's schema with no open kinds, given to the client as its
	// source of kinds' policies.
	Catalog *catalog.Catalog
	// MaxResponseBytes (16 MiB) bounds the large fields one answer
	// carries: a list page with payloads holds as many jobs as fit it at
	// their largest, a workflow its steps' results, the schedules list
	// their payloads; the rest are left out, and marked.
	MaxResponseBytes int64
	// Counts serves /v1/stats, /v1/queues and the waiting counts of
	// /v1/kinds; share it with the process's gauges. nil: counted afresh
	// on every request.
	Counts *jobqueue.CountsCache
	// Extensions are routes an application adds (the order demo's).
	Extensions []apiext.Route
	// Tokens, when any, are required as bearer tokens on every /v1 route;
	// none means authentication is off (the caller decided that is allowed).
	Tokens   []Token
	Logger   *slog.Logger          // discard
	Registry prometheus.Registerer // nil: no HTTP metrics
}

func (o *Opts) withDefaults() Opts {
	var c Opts
	if o != nil {
		c = *o
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def64(&c.MaxPayloadBytes, 1<<20)
	def64(&c.MaxBatchBytes, 8<<20)
	def64(&c.MaxResponseBytes, 16<<20)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 10 * time.Second
	}
	if c.InFlightWait == 0 {
		c.InFlightWait = 250 * time.Millisecond
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// api holds what the handlers share.
type api struct {
	client    *jobqueue.Client
	catalog   *catalog.Catalog
	schedules *schedule.Store
	opts      Opts
	metrics   *httpMetrics
	buffered  *budget
	gather    *jobqueue.Gatherer // POST /v1/jobs: concurrent requests share commits
}

// New returns the API's handler: the /v1 routes wrapped in request-id,
// logging, metrics and panic recovery, which also cover unmatched requests.
func New(client *jobqueue.Client, opts *Opts) http.Handler {
	a := newAPI(client, opts)
	a.metrics = newHTTPMetrics(a.opts.Registry)
	return observe(a.metrics, a.opts.Logger, recoverPanics(a.router()))
}

func newAPI(client *jobqueue.Client, opts *Opts) *api {
	o := opts.withDefaults()
	if pool := client.Pool(); o.MaxInFlight == 0 && pool != nil {
		// Gathered enqueues share a connection per group, so far more of
		// them than connections keep the pool busy (64 clients against 20
		// slots got 2.2x pgbench's insert rate, against 64 slots 3.4x);
		// their bodies stay bounded by the buffered-bytes budget.
		o.MaxInFlight = 8 * int(pool.Config().MaxConns)
	}
	cat := o.Catalog
	if cat == nil {
		cat = catalog.New(client, nil)
		client.SetPolicies(cat)
	}
	if o.Counts == nil {
		o.Counts = jobqueue.NewCountsCache(client, 0)
	}
	return &api{client: client, catalog: cat, schedules: schedule.NewStore(client, cat, &schedule.StoreOpts{MaxSchedules: o.MaxSchedules}),
		opts: o, buffered: newBudget(o.MaxBufferedBytes), gather: client.NewGatherer(gatherOpts(client, o))}
}

// router is the /v1 routes and their middleware: a request is
// authenticated before it takes one of the in-flight slots, so requests
// without a valid token can never crowd out those with one, and its body is
// read before too, so a slow sender cannot hold a slot.
func (a *api) router() *mux.Router {
	auth := authenticate(a.opts.Tokens)
	r := mux.NewRouter()
	maxBody := max(a.opts.MaxBatchBytes, a.opts.MaxPayloadBytes+envelopeBytes)
	r.Use(recordRoute, auth, refuseCrossSite(), bufferBodies(maxBody, a.opts.BodyTimeout, a.buffered, a.metrics),
		limitInFlight(a.opts.MaxInFlight, a.opts.InFlightWait, a.buffered, a.metrics), withTimeout(a.opts.RequestTimeout))
	// Full paths rather than a /v1 subrouter: the route label and logs then
	// carry the whole template, and 404/405 handling stays in one router.
	r.HandleFunc("/v1/jobs", a.enqueue).Methods(http.MethodPost)
	r.HandleFunc("/v1/jobs", a.list).Methods(http.MethodGet)
	r.HandleFunc("/v1/jobs/batch", a.enqueueBatch).Methods(http.MethodPost)
	r.HandleFunc("/v1/jobs/{id}", a.get).Methods(http.MethodGet)
	r.HandleFunc("/v1/jobs/{id}/cancel", a.cancel).Methods(http.MethodPost)
	r.HandleFunc("/v1/jobs/{id}/retry", a.retry).Methods(http.MethodPost)
	r.HandleFunc("/v1/stats", a.stats).Methods(http.MethodGet)
	r.HandleFunc("/v1/openapi.json", serveDocument).Methods(http.MethodGet)
	a.routeFlow(r)
	for _, ext := range a.opts.Extensions {
		r.Handle(ext.Path, a.extension(ext)).Methods(ext.Method)
	}

	// Unmatched requests need a token too: without one, not even which
	// routes exist is revealed.
	r.NotFoundHandler = auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, &apiError{Status: http.StatusNotFound, Message: "no such route: " + clip(r.URL.Path)})
	}))
	r.MethodNotAllowedHandler = auth(methodNotAllowed(r))
	return r
}

// methodNotAllowed answers 405 with the Allow header listing the methods the
// path does accept; mux knows the path matched but not which methods would.
func methodNotAllowed(r *mux.Router) http.Handler {
	type pathRoute struct {
		re      *regexp.Regexp
		methods []string
	}
	var routes []pathRoute
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		re, err1 := route.GetPathRegexp()
		methods, err2 := route.GetMethods()
		if err1 == nil && err2 == nil {
			routes = append(routes, pathRoute{regexp.MustCompile(re), methods})
		}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var allow []string
		for _, pr := range routes {
			if pr.re.MatchString(req.URL.Path) {
				allow = append(allow, pr.methods...)
			}
		}
		slices.Sort(allow)
		allow = slices.Compact(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, req, &apiError{Status: http.StatusMethodNotAllowed,
			Message: "method " + req.Method + " not allowed here; allowed: " + strings.Join(allow, ", ")})
	})
}

// extension serves an application's route with the API's decoder and
// error shape.
func (a *api) extension(ext apiext.Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := apiext.Request{Vars: mux.Vars(r), RequestID: requestID(r.Context()),
			Decode: func(v any) error { return decodeBody(w, r, a.opts.MaxPayloadBytes+envelopeBytes, v) }}
		status, body, err := ext.Handle(r, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, status, body)
	})
}

// gatherOpts: a gathered statement holds at most a batch's worth of jobs,
// and a quarter of the pool writes them, leaving the rest to reads: fewer
// statements at once make larger groups (with half the pool, 64 clients got
// 2.4x pgbench's rate instead of 3.4x).
func gatherOpts(client *jobqueue.Client, o Opts) *jobqueue.GatherOpts {
	g := &jobqueue.GatherOpts{MaxBatch: o.MaxBatch, Timeout: o.RequestTimeout}
	if pool := client.Pool(); pool != nil {
		g.MaxFlushes = max(2, int(pool.Config().MaxConns)/4)
	}
	return g
}

// serveDocument: GET /v1/openapi.json, the API's OpenAPI document. It
// sits behind the token like every /v1 route: which routes exist is not
// shown to requests without one (see the NotFoundHandler), and any token,
// read-only included, may fetch it.
func serveDocument(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openapi.Document)
}
