// Package catalog is the kind catalog as the API and the scheduler see it:
// the kinds workers published (package jobqueue publishes a worker's kinds
// when it starts), each with the JSON Schema of its payload and its policy.
// It validates payloads against those schemas strictly (santhosh-tekuri's
// jsonschema, draft 2020-12), so a job of a kind the API was never compiled
// with is checked at enqueue all the same, and gives their policies to a
// jobqueue.Client. Kinds nobody published are refused, unless an operator
// opened them.
package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	schemakind "github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/spoolq/spool/shared/jobqueue"
)

// How stale the cached catalog may be, and how often a miss (a kind not
// in the cache) may reload it: a kind published a moment ago is accepted
// within missReload, and clients naming unknown kinds cost at most one
// query per missReload.
const (
	refresh    = 5 * time.Second
	missReload = time.Second
)

// OpenAll, as an open kind, accepts every kind.
const OpenAll = "*"

// UnknownKindError refuses a kind that nobody published and that is not
// open; Known lists the kinds that are.
type UnknownKindError struct {
	Kind  string
	Known []string
}

func (e *UnknownKindError) Error() string { return fmt.Sprintf("unknown job type %q", e.Kind) }

// Is makes errors.Is(err, jobqueue.ErrInvalid) true.
func (e *UnknownKindError) Is(target error) bool { return target == jobqueue.ErrInvalid }

// Catalog validates payloads against the published kinds.
type Catalog struct {
	client *jobqueue.Client
	open   map[string]bool
	checks map[string]CheckFunc // per kind, after the schema

	mu      sync.Mutex
	kinds   map[string]*entry
	loaded  time.Time
	tried   time.Time // the last load, successful or not
	loadErr error
}

type entry struct {
	info   jobqueue.KindInfo
	schema *jsonschema.Schema
}

// New returns the catalog of client's schema. open names kinds accepted
// without a published schema (any JSON object), or OpenAll.
func New(client *jobqueue.Client, open []string) *Catalog {
	c := &Catalog{client: client, open: map[string]bool{}, checks: map[string]CheckFunc{}}
	for _, k := range open {
		c.open[k] = true
	}
	return c
}

// Validate checks a JSON payload against kind's published schema. A kind
// not published and not open is an *UnknownKindError; a payload that does
// not match is a *jobqueue.InvalidError naming the field at fault
// ("payload.to").
func (c *Catalog) Validate(ctx context.Context, kind string, payload []byte) error {
	_, err := c.Prepare(ctx, kind, payload)
	return err
}

// Prepare validates payload as Validate does and returns the payload to
// write instead when the kind's check rewrote it (the http kind seals
// secret header values), nil to write payload as it is.
func (c *Catalog) Prepare(ctx context.Context, kind string, payload []byte) ([]byte, error) {
	if err := jobqueue.CheckKindName(kind); err != nil {
		return nil, err
	}
	e, err := c.lookup(ctx, kind)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, c.openOrUnknown(ctx, kind, payload)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return nil, &jobqueue.InvalidError{Field: "payload", Reason: "is not valid JSON"}
	}
	var ve *jsonschema.ValidationError
	if err := e.schema.Validate(doc); errors.As(err, &ve) {
		return nil, fieldError(ve)
	} else if err != nil {
		return nil, &jobqueue.InvalidError{Field: "payload", Reason: err.Error()}
	}
	if check := c.checks[kind]; check != nil {
		return check(ctx, payload)
	}
	return nil, nil
}

// CheckFunc checks a kind's payload beyond its schema; it returns the
// payload to write instead, or nil to keep it.
type CheckFunc func(ctx context.Context, payload []byte) ([]byte, error)

// Check adds a check of kind's payloads that a schema cannot express (the
// http kind's destination against the allow list), run after the schema
// on every enqueue path; call it before the catalog is used.
func (c *Catalog) Check(kind string, fn CheckFunc) {
	c.checks[kind] = fn
}

func (c *Catalog) openOrUnknown(ctx context.Context, kind string, payload []byte) error {
	if !c.open[kind] && !c.open[OpenAll] {
		known, err := c.Known(ctx)
		if err != nil {
			return err
		}
		return &UnknownKindError{Kind: kind, Known: known}
	}
	if len(bytes.TrimSpace(payload)) == 0 || bytes.TrimSpace(payload)[0] != '{' {
		return &jobqueue.InvalidError{Field: "payload", Reason: "must be a JSON object"}
	}
	return nil
}

var printer = message.NewPrinter(language.English)

// fieldError reduces a validation error to its first leaf: the field
// (payload.a.b) and what is wrong with it.
func fieldError(ve *jsonschema.ValidationError) error {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	path := append([]string{"payload"}, ve.InstanceLocation...)
	if ap, ok := ve.ErrorKind.(*schemakind.AdditionalProperties); ok && len(ap.Properties) > 0 {
		path = append(path, ap.Properties[0])
		return &jobqueue.InvalidError{Field: strings.Join(path, "."), Reason: "unknown field"}
	}
	if rq, ok := ve.ErrorKind.(*schemakind.Required); ok && len(rq.Missing) > 0 {
		path = append(path, rq.Missing[0])
		return &jobqueue.InvalidError{Field: strings.Join(path, "."), Reason: "is required"}
	}
	return &jobqueue.InvalidError{Field: strings.Join(path, "."), Reason: ve.ErrorKind.LocalizedString(printer)}
}

// lookup returns kind's entry, reloading a stale cache, or a cache that
// misses kind and has not been reloaded for missReload; nil if the catalog
// does not have it.
func (c *Catalog) lookup(ctx context.Context, kind string) (*entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.kinds[kind]
	stale := time.Since(c.loaded) > refresh
	if (ok && !stale) || (!ok && !stale && time.Since(c.tried) < missReload) {
		return e, nil
	}
	if err := c.load(ctx); err != nil && c.kinds == nil {
		return nil, err // never loaded: the database is the answer's only source
	}
	return c.kinds[kind], nil
}

// load reads the catalog and compiles its schemas; the lock is held.
func (c *Catalog) load(ctx context.Context) error {
	c.tried = time.Now()
	infos, err := c.client.Kinds(ctx)
	if err != nil {
		return err
	}
	kinds := make(map[string]*entry, len(infos))
	for _, info := range infos {
		if old, ok := c.kinds[info.Name]; ok && old.info.UpdatedAt.Equal(info.UpdatedAt) {
			old.info = info
			kinds[info.Name] = old
			continue
		}
		s, err := compile(info)
		if err != nil {
			continue // a worker published a schema this validator cannot compile: treat the kind as unknown
		}
		kinds[info.Name] = &entry{info: info, schema: s}
	}
	c.kinds, c.loaded = kinds, time.Now()
	return nil
}

func compile(info jobqueue.KindInfo) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(info.Schema))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	url := "spool:kind/" + info.Name
	if err := comp.AddResource(url, doc); err != nil {
		return nil, err
	}
	return comp.Compile(url)
}

// Known lists the kinds that may be enqueued: the published ones and the
// open ones, sorted.
func (c *Catalog) Known(ctx context.Context) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kinds == nil || time.Since(c.loaded) > refresh {
		if err := c.load(ctx); err != nil && c.kinds == nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(c.kinds)+len(c.open))
	for k := range c.kinds {
		out = append(out, k)
	}
	for k := range c.open {
		if _, dup := c.kinds[k]; !dup && k != OpenAll {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// Open reports whether kind is accepted without a published schema.
func (c *Catalog) Open(kind string) bool { return c.open[kind] || c.open[OpenAll] }

// Policy returns a published kind's policy, from the cache (Validate loads
// it); it makes the catalog a jobqueue.PolicySource.
func (c *Catalog) Policy(kind string) (jobqueue.Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.kinds[kind]; ok {
		return e.info.Policy, true
	}
	return jobqueue.Policy{}, false
}

// Local validates payloads against the kinds of a registry in memory, with
// their Go types (strict decoding and Validate), where no catalog is at
// hand: checking a schedules file before a worker publishes, or fuzzing.
type Local struct{ Kinds *jobqueue.Kinds }

// Validate checks payload against kind; an unregistered kind is an
// *UnknownKindError.
func (l Local) Validate(_ context.Context, kind string, payload []byte) error {
	known, err := l.Kinds.Check(kind, payload)
	if !known {
		return &UnknownKindError{Kind: kind, Known: l.Kinds.Names()}
	}
	if err != nil {
		return &jobqueue.InvalidError{Field: "payload", Reason: err.Error()}
	}
	return nil
}
