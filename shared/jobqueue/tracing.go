package jobqueue

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"

	"github.com/spoolq/spool/shared/jobqueue/internal/tracing"
)

// Tracing: when the process has an OpenTelemetry tracer provider (set by
// the Spool binaries from the standard OTEL_* variables, or by your own
// program), every enqueue stores the W3C traceparent of the context's span
// with the job, and the worker runs each attempt in a span ("spool.job
// <kind>", attributes spool.job.id, .kind, .queue, .attempt) that
// continues it; follow-ups (Then) continue the handler's. Without one,
// nothing is stored and the spans are no-ops.

// InjectTrace writes ctx's trace context (W3C traceparent) into h, so a
// request a handler sends joins the job's trace; the http kind does this
// for every request.
func InjectTrace(ctx context.Context, h http.Header) {
	tracing.Inject(ctx, propagation.HeaderCarrier(h))
}
