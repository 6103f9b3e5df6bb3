// Package jobqueue is Spool's core: a background-job queue on PostgreSQL
// that a Go program imports to enqueue jobs and to run them.
//
// # Kinds
//
// A kind is a stable name, a payload type, and what the kind declares
// about its jobs, all beside one another:
//
//	type Resize struct {
//		ImageID int64 `json:"image_id" jsonschema:"minimum=1"`
//		Width   int   `json:"width" jsonschema:"minimum=1,maximum=8192"`
//	}
//
//	func (Resize) Kind() string   { return "images.resize" }
//	func (Resize) Policy() Policy { return Policy{MaxAttempts: 5, Timeout: time.Minute} }
//
// A Kinds registry holds a worker's kinds with their handlers (AddKind).
// The worker publishes them, with the JSON Schema of their payloads, to the
// kind catalog when it starts, so the stock HTTP API validates jobs of
// kinds it was never compiled with.
//
// # Enqueueing
//
// Client.Enqueue writes one job; Client.EnqueueTx writes it inside the
// caller's transaction, so the job exists exactly when the caller's rows
// do; EnqueueMany and EnqueueManyFast (COPY) write many. Every path applies
// the same rules (CheckParams) and the kind's policy: the job's own
// settings, else its kind's, else the defaults.
//
// # Running
//
// A Worker claims jobs of its kinds from its queues with FOR UPDATE SKIP
// LOCKED, wakes on LISTEN/NOTIFY and polls, runs each attempt under its
// deadline and a lease that it renews, and writes the outcome: completed,
// retried after a backoff, dead, snoozed, or handed back on shutdown. Every
// write that ends an attempt is fenced by the attempt's lease token, and a
// worker that cannot renew a lease cancels the handler before the lease can
// run out, so a job never runs twice at once (see the README's delivery
// guarantees). Package workerapp adds what a worker binary needs around it.
//
// # Layout
//
// This package is the API; the machinery lives in internal packages, one
// responsibility each: store (every SQL statement), enqueue, workflow,
// executor (one attempt), completer (writing outcomes), lease, producer
// (claiming), notifier (LISTEN), maintenance (rescue, prune, the worker
// registry), retry (the one retry rule) and metrics. The plain row types
// are in package spooltype and aliased here.
package jobqueue
