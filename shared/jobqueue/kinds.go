package jobqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"sort"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/spoolq/spool/shared/jobqueue/internal/executor"
	"github.com/spoolq/spool/shared/spooltype"
)

// Args is a kind's payload type. Kind is its stable name ("send_email"),
// never derived from the Go type's name, so renaming a struct strands no
// queued job. An Args type may also declare, beside the kind:
//
//	Policy() Policy   the kind's attempts, timeout and backoff
//	Validate() error  checks beyond the payload's JSON types
//
// Both are used wherever the kind is enqueued or run.
type Args interface {
	Kind() string
}

// HandlerFunc runs one attempt of a job. Return nil for success, a plain
// error to retry with backoff, Permanent(err) to fail at once, or
// Snooze(d) to run again later without spending an attempt.
type HandlerFunc func(ctx context.Context, job *Job) error

// KindOpts describes a kind beyond its Args type; nil means none.
type KindOpts struct {
	// Description is shown in the catalog (GET /v1/kinds, the dashboard).
	Description string
	// Policy and Schema are for kinds added with Handle, which have no
	// Args type to declare them on: the kind's policy, and the JSON
	// Schema of its payload (default: any JSON object).
	Policy Policy
	Schema json.RawMessage
}

// Kinds is a registry of job kinds: each kind's payload type, its
// validation, its policy and its handler, declared once. A worker runs the
// kinds of its registry and publishes them to the catalog when it starts;
// a client given a registry applies their policies and checks their
// payloads at enqueue.
type Kinds struct {
	m map[string]*kind
}

type kind struct {
	info   KindInfo
	handle executor.Handler
	check  func(payload []byte) error // strict decode and Validate
}

// NewKinds returns an empty registry.
func NewKinds() *Kinds { return &Kinds{m: map[string]*kind{}} }

type validator interface{ Validate() error }
type policied interface{ Policy() Policy }

// AddKind registers the kind of T, run by fn with the payload decoded into
// T. Its policy comes from T's Policy method, its payload schema from T's
// fields (strict: unknown fields are refused). A payload that does not
// decode, or fails T's Validate, fails the job permanently: retrying
// cannot fix it. Adding a kind twice is a programming error and panics.
func AddKind[T Args](k *Kinds, fn func(ctx context.Context, job *Job, args T) error, opts *KindOpts) {
	var zero T
	name := zero.Kind()
	o := optsOf(opts)
	if o.Policy != (Policy{}) || o.Schema != nil {
		panic(fmt.Sprintf("jobqueue: kind %q: declare its policy with a Policy method on %T, and its schema by its fields", name, zero))
	}
	if p, ok := any(zero).(policied); ok {
		o.Policy = p.Policy()
	}
	schema, err := SchemaOf(zero)
	if err != nil {
		panic(fmt.Sprintf("jobqueue: kind %q: %v", name, err))
	}
	o.Schema = schema
	k.add(name, o, func(ctx context.Context, job *Job) error {
		var args T
		if err := json.Unmarshal(job.Payload, &args); err != nil {
			return Permanent(fmt.Errorf("decode %s payload: %w", job.Kind, err))
		}
		if v, ok := any(args).(validator); ok {
			if err := v.Validate(); err != nil {
				return Permanent(fmt.Errorf("%s payload: %w", job.Kind, err))
			}
		}
		return fn(ctx, job, args)
	}, checkStrict[T])
}

// Handle registers a kind by name, run by fn with the raw job. Its policy
// and payload schema come from opts.
func (k *Kinds) Handle(name string, fn HandlerFunc, opts *KindOpts) {
	o := optsOf(opts)
	if o.Schema == nil {
		o.Schema = json.RawMessage(`{"type":"object"}`)
	}
	k.add(name, o, executor.Handler(fn), nil)
}

func optsOf(opts *KindOpts) KindOpts {
	if opts == nil {
		return KindOpts{}
	}
	return *opts
}

func (k *Kinds) add(name string, o KindOpts, h executor.Handler, check func([]byte) error) {
	if err := CheckKindName(name); err != nil {
		panic(fmt.Sprintf("jobqueue: kind %q: %v", name, err))
	}
	if _, dup := k.m[name]; dup {
		panic(fmt.Sprintf("jobqueue: kind %q registered twice", name))
	}
	if !json.Valid(o.Schema) {
		panic(fmt.Sprintf("jobqueue: kind %q: its schema is not JSON", name))
	}
	k.m[name] = &kind{info: KindInfo{Name: name, Description: o.Description, Schema: o.Schema, Policy: o.Policy}, handle: h, check: check}
}

// checkStrict decodes payload into T refusing unknown fields and trailing
// data, then runs T's Validate.
func checkStrict[T Args](payload []byte) error {
	var args T
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return fmt.Errorf("does not match %s: %s", args.Kind(), strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) { // More() misses a stray '}' or ']'
		return errors.New("has trailing data")
	}
	if v, ok := any(args).(validator); ok {
		return v.Validate()
	}
	return nil
}

// Names lists the registered kinds, sorted.
func (k *Kinds) Names() []string {
	out := make([]string, 0, len(k.m))
	for n := range k.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Infos describes every registered kind, sorted by name, as workers
// publish them.
func (k *Kinds) Infos() []KindInfo {
	out := make([]KindInfo, 0, len(k.m))
	for _, n := range k.Names() {
		out = append(out, k.m[n].info)
	}
	return out
}

// Policy returns a registered kind's policy.
func (k *Kinds) Policy(name string) (Policy, bool) {
	if k == nil {
		return Policy{}, false
	}
	kd, ok := k.m[name]
	if !ok {
		return Policy{}, false
	}
	return kd.info.Policy, true
}

// Check validates a JSON payload against a registered kind strictly;
// known is false for a kind not registered (nothing is checked then).
func (k *Kinds) Check(name string, payload []byte) (known bool, err error) {
	if k == nil {
		return false, nil
	}
	kd, ok := k.m[name]
	if !ok || kd.check == nil {
		return ok, nil
	}
	return true, kd.check(payload)
}

// SchemaOf derives the JSON Schema (draft 2020-12) of an Args type's
// payload from its fields, as the catalog publishes it: an object whose
// properties are the JSON fields, those without omitempty required, and no
// others allowed. Constraints can be added with jsonschema struct tags
// (github.com/invopop/jsonschema), e.g. `jsonschema:"minimum=1,format=email"`.
func SchemaOf(args Args) (json.RawMessage, error) {
	r := &jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, Anonymous: true, Mapper: integerBounds}
	s := r.Reflect(args)
	s.ID = ""
	s.Version = "https://json-schema.org/draft/2020-12/schema"
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("payload schema: %w", err)
	}
	return b, nil
}

// integerBounds gives Go's integer types their range, so that a number
// the handler could not decode (2^63 for an int64) is refused at enqueue,
// not by the handler.
func integerBounds(t reflect.Type) *jsonschema.Schema {
	var lo, hi string
	switch t.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		bits := t.Bits()
		lo, hi = new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), uint(bits-1))).String(),
			new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)), big.NewInt(1)).String()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		lo, hi = "0", new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(t.Bits())), big.NewInt(1)).String()
	default:
		return nil
	}
	return &jsonschema.Schema{Type: "integer", Minimum: json.Number(lo), Maximum: json.Number(hi)}
}

// policies is what a client knows of kinds: its own registry first, then
// a source of policies of kinds declared elsewhere (the catalog).
type policies struct {
	local *Kinds
	other PolicySource
}

func (p policies) Policy(kind string) (spooltype.Policy, bool) {
	if pol, ok := p.local.Policy(kind); ok {
		return pol, true
	}
	if p.other != nil {
		return p.other.Policy(kind)
	}
	return spooltype.Policy{}, false
}

func (p policies) Check(kind string, payload []byte) (bool, error) {
	return p.local.Check(kind, payload)
}

// PolicySource gives the policies of kinds this process does not declare
// itself, such as the catalog's.
type PolicySource interface {
	Policy(kind string) (Policy, bool)
}
