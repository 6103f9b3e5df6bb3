package httpapi

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startSpan starts the request's server span, continuing the caller's
// trace (traceparent) when it sends one; jobs the request enqueues store
// the span's context. With tracing off the span is a no-op. end names the
// span after the matched route, once routing has found it.
func startSpan(r *http.Request) (context.Context, func(info *requestInfo, status int)) {
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := otel.Tracer("github.com/spoolq/spool/services/api").Start(ctx, "http", trace.WithSpanKind(trace.SpanKindServer))
	return ctx, func(info *requestInfo, status int) {
		if span.IsRecording() {
			span.SetName(r.Method + " " + info.route)
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("http.route", info.route),
				attribute.String("url.path", clipTo(r.URL.Path, maxLoggedPath)),
				attribute.Int("http.response.status_code", status),
				attribute.String("spool.request_id", info.id),
			)
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		span.End()
	}
}
