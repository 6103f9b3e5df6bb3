package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolq/spool/shared/spooltype"
)

// What tracing adds to each job: the enqueue's Parent, and the span
// around the handler. Off (no provider: the Spool binaries without
// OTEL_EXPORTER_OTLP_ENDPOINT) against on (the SDK, spans kept in memory).
func BenchmarkTracingOff(b *testing.B) {
	job := &spooltype.Job{ID: 1, Kind: "noop", Queue: "default", Attempts: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if Parent(ctx) != "" {
			b.Fatal("a parent without a span")
		}
		_, span := StartJob(ctx, job)
		EndJob(span, "completed", "")
	}
}

func BenchmarkTracingOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer tp.Shutdown(context.Background())
	ctx, root := tp.Tracer("bench").Start(context.Background(), "request")
	defer root.End()
	parent := Parent(ctx)
	job := &spooltype.Job{ID: 1, Kind: "noop", Queue: "default", Attempts: 1, TraceParent: &parent}
	b.ReportAllocs()
	for b.Loop() {
		_ = Parent(ctx)
		jctx, span := startWith(tp.Tracer("bench"), context.Background(), job)
		if !trace.SpanContextFromContext(jctx).IsValid() {
			b.Fatal("no span")
		}
		EndJob(span, "completed", "")
	}
}

// A stored traceparent is continued; a malformed one is not stored.
func TestParentRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, root := tp.Tracer("t").Start(context.Background(), "request")
	defer root.End()
	parent := Parent(ctx)
	if !Valid(parent) || Parent(context.Background()) != "" {
		t.Fatalf("Parent = %q, and %q without a span", parent, Parent(context.Background()))
	}
	jctx, span := startWith(tp.Tracer("t"), context.Background(), &spooltype.Job{Kind: "noop", TraceParent: &parent})
	defer span.End()
	if got := trace.SpanContextFromContext(jctx); got.TraceID() != root.SpanContext().TraceID() {
		t.Errorf("job span in trace %s, want %s", got.TraceID(), root.SpanContext().TraceID())
	}
	for _, bad := range []string{"", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-xyz", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"} {
		if Valid(bad) {
			t.Errorf("Valid(%q)", bad)
		}
	}
}
