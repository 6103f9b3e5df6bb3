// Package tracing carries OpenTelemetry trace context through the queue:
// the enqueuing span's W3C traceparent is stored with the job, and the
// worker's span around the handler continues it. With no tracer provider
// set (tracing off), every call here takes nanoseconds and allocates
// nothing (BenchmarkTracingOff).
package tracing

import (
	"context"
	"regexp"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolq/spool/shared/spooltype"
)

// Always W3C Trace Context, whatever global propagator the process set:
// the column holds a traceparent.
var w3c = propagation.TraceContext{}

// validParent is a traceparent of version 00 (W3C Trace Context §3.2).
var validParent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// Valid reports whether s is a traceparent worth storing.
func Valid(s string) bool { return validParent.MatchString(s) }

// Parent is the traceparent of ctx's span, "" when ctx has no valid span
// (tracing off, or nobody started one).
func Parent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"]
}

// Inject writes ctx's trace context into an outgoing request's headers.
func Inject(ctx context.Context, c propagation.TextMapCarrier) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		w3c.Inject(ctx, c)
	}
}

// tracer is the global provider's: until a provider is set it is a no-op,
// and it delegates to the provider once one is (otel's global package).
var tracer = otel.Tracer("github.com/spoolq/spool/shared/jobqueue")

// unset is the global provider before any program sets one: while it is
// still the global one, no span would be recorded, and StartJob skips even
// the no-op span (which allocates).
var unset = otel.GetTracerProvider()

// Off reports whether no tracer provider is set.
func Off() bool { return otel.GetTracerProvider() == unset }

// consumer is built once: an option made per call would allocate.
var consumer = trace.WithSpanKind(trace.SpanKindConsumer)

// StartJob starts the span of one attempt of job, a child of the span
// that enqueued it when the job carries its traceparent. Names and
// attributes are set only on a span that records, so that tracing off
// costs next to nothing.
func StartJob(ctx context.Context, job *spooltype.Job) (context.Context, trace.Span) {
	if Off() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return startWith(tracer, ctx, job)
}

func startWith(t trace.Tracer, ctx context.Context, job *spooltype.Job) (context.Context, trace.Span) {
	if job.TraceParent != nil {
		ctx = w3c.Extract(ctx, propagation.MapCarrier{"traceparent": *job.TraceParent})
	}
	ctx, span := t.Start(ctx, "spool.job", consumer)
	if span.IsRecording() {
		span.SetName("spool.job " + job.Kind)
		span.SetAttributes(
			attribute.Int64("spool.job.id", job.ID),
			attribute.String("spool.job.kind", job.Kind),
			attribute.String("spool.job.queue", job.Queue),
			attribute.Int("spool.job.attempt", job.Attempts),
			attribute.String("messaging.system", "spool"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.message.id", strconv.FormatInt(job.ID, 10)),
		)
	}
	return ctx, span
}

// EndJob ends an attempt's span with its outcome and, for a failure, its
// message.
func EndJob(span trace.Span, outcome, failure string) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("spool.job.outcome", outcome))
		if failure != "" {
			span.SetStatus(codes.Error, failure)
		}
	}
	span.End()
}
