package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// enqueueFlags are `jobs enqueue`'s: the job's fields, or the file of one
// job or of a batch.
type enqueueFlags struct {
	kind, payload, queue, delay, runAt, timeout, backoffBase, backoffMax, key string
	priority, maxAttempts                                                     int
	file, batch                                                               string
	chunk                                                                     int
}

// Batch chunks: the API's defaults are 1000 jobs (SPOOL_MAX_BATCH) and
// 8 MiB (SPOOL_MAX_BATCH_BYTES) per request; a chunk stays a little under
// the bytes, as the JSON around the jobs counts too.
const (
	defaultChunk  = 1000
	maxChunkBytes = 8<<20 - 64<<10
	maxLineBytes  = maxChunkBytes
)

func (a *app) enqueueCommand() *cobra.Command {
	var f enqueueFlags
	cmd := &cobra.Command{
		Use:   "enqueue",
		Short: "Enqueue a job from flags or a JSON file, or a batch from JSON lines",
		Long: `Enqueue one job from flags (--type, --payload, ...), one job from a JSON file (--file, the
body of POST /v1/jobs), or many from a file of JSON lines, one job per line (--batch, sent to
POST /v1/jobs/batch in chunks of --chunk-size jobs). "-" reads the file from stdin. Flags given
with --file or --batch set those fields in every job.

Each chunk of a batch is written all or nothing; when one is refused, the chunks before it stay
enqueued, and the message says from which line on nothing was.`,
		Example: `  spool jobs enqueue --type send_email --payload '{"to":"a@example.com"}' --queue emails --delay 10s
  spool jobs enqueue --type noop --idempotency-key order-42
  spool jobs enqueue --file job.json
  spool jobs enqueue --batch jobs.jsonl -o json`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error { return a.enqueue(cmd, f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kind, "type", "", "job type (a kind in 'spool kinds list')")
	fl.StringVar(&f.payload, "payload", "", "payload, a JSON object (@file reads it from a file)")
	fl.StringVar(&f.queue, "queue", "", "queue (default: default)")
	fl.IntVar(&f.priority, "priority", 0, "priority, -1000..1000; higher runs first")
	fl.StringVar(&f.delay, "delay", "", "run no earlier than this long from now (e.g. 10s, 5m)")
	fl.StringVar(&f.runAt, "run-at", "", "run no earlier than this RFC 3339 time")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts before the job is dead, 1..100 (default: the kind's)")
	fl.StringVar(&f.timeout, "job-timeout", "", "the handler's deadline (default: the kind's)")
	fl.StringVar(&f.backoffBase, "backoff-base", "", "first retry delay ceiling (default: the kind's)")
	fl.StringVar(&f.backoffMax, "backoff-max", "", "largest retry delay (default: the kind's)")
	fl.StringVar(&f.key, "idempotency-key", "", "while a job with this key exists, enqueueing again returns it")
	fl.StringVar(&f.file, "file", "", "a JSON file of one job (- for stdin)")
	fl.StringVar(&f.batch, "batch", "", "a file of JSON lines, one job per line (- for stdin)")
	fl.IntVar(&f.chunk, "chunk-size", defaultChunk, "jobs per batch request, at most the API's SPOOL_MAX_BATCH")
	cmd.MarkFlagsMutuallyExclusive("file", "batch")
	cmd.MarkFlagsMutuallyExclusive("delay", "run-at")
	cmd.MarkFlagsMutuallyExclusive("batch", "idempotency-key")
	_ = cmd.MarkFlagFilename("file", "json")
	_ = cmd.MarkFlagFilename("batch", "jsonl", "ndjson", "json")
	_ = cmd.RegisterFlagCompletionFunc("type", a.completeKinds)
	return cmd
}

// overrides are the job fields the flags set, as JSON values.
func (a *app) overrides(cmd *cobra.Command, f enqueueFlags) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	str := func(v string) json.RawMessage { b, _ := json.Marshal(v); return b }
	fl := cmd.Flags()
	for _, s := range []struct{ flag, field, val string }{
		{"type", "type", f.kind}, {"queue", "queue", f.queue}, {"run-at", "run_at", f.runAt}, {"delay", "delay", f.delay},
		{"job-timeout", "timeout", f.timeout}, {"backoff-base", "backoff_base", f.backoffBase},
		{"backoff-max", "backoff_max", f.backoffMax}, {"idempotency-key", "idempotency_key", f.key},
	} {
		if fl.Changed(s.flag) {
			out[s.field] = str(s.val)
		}
	}
	for _, d := range []string{"delay", "job-timeout", "backoff-base", "backoff-max"} {
		if v, _ := fl.GetString(d); fl.Changed(d) {
			if _, err := time.ParseDuration(v); err != nil {
				return nil, usagef("--%s %q: not a duration (such as 10s or 5m)", d, v)
			}
		}
	}
	if fl.Changed("priority") {
		out["priority"] = json.RawMessage(strconv.Itoa(f.priority))
	}
	if fl.Changed("max-attempts") {
		out["max_attempts"] = json.RawMessage(strconv.Itoa(f.maxAttempts))
	}
	if fl.Changed("payload") {
		p := []byte(f.payload)
		if len(p) > 0 && p[0] == '@' {
			var err error
			if p, err = os.ReadFile(string(p[1:])); err != nil {
				return nil, &failure{err: fmt.Errorf("--payload: %w", err)}
			}
		}
		if !isObject(p) {
			return nil, usagef("--payload must be a JSON object, such as '{\"to\":\"a@example.com\"}'")
		}
		out["payload"] = bytes.TrimSpace(p)
	}
	return out, nil
}

// isObject reports whether b is one JSON object.
func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}

func (a *app) enqueue(cmd *cobra.Command, f enqueueFlags) error {
	over, err := a.overrides(cmd, f)
	if err != nil {
		return err
	}
	if f.batch != "" {
		if f.chunk < 1 {
			return usagef("--chunk-size must be at least 1")
		}
		return a.enqueueBatch(cmd, f, over)
	}
	body := map[string]json.RawMessage{}
	if f.file != "" {
		b, err := a.readInput(f.file)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &body); err != nil || !isObject(b) {
			return &failure{err: fmt.Errorf("%s: not a JSON object of one job", f.file)}
		}
	} else if !cmd.Flags().Changed("type") {
		return usagef("give --type (or --file, or --batch)")
	}
	for k, v := range over {
		body[k] = v
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	raw, err := c.do(cmd.Context(), http.MethodPost, "/v1/jobs", nil, body)
	if err != nil {
		return err
	}
	if a.jsonOut() {
		return a.printJSON(raw)
	}
	var resp struct {
		Job       job  `json:"job"`
		Duplicate bool `json:"duplicate"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("unexpected answer: %w", err)
	}
	j := resp.Job
	t := newTable(a.stdout, "ID", "TYPE", "QUEUE", "STATUS", "RUN AT", "DUPLICATE")
	t.row(strconv.FormatInt(j.ID, 10), j.Type, j.Queue, j.Status, fmtTime(j.RunAt), strconv.FormatBool(resp.Duplicate))
	return t.flush()
}

// readInput reads a file, or stdin for "-".
func (a *app) readInput(name string) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(a.stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, &failure{err: err}
	}
	return b, nil
}

// batchLine is one job of a batch file and the line it came from.
type batchLine struct {
	line int
	job  json.RawMessage
}

// readBatch reads every job of a JSON lines file before anything is sent,
// so a malformed line enqueues nothing. Blank lines are skipped.
func (a *app) readBatch(name string, over map[string]json.RawMessage) ([]batchLine, error) {
	var r io.Reader = a.stdin
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return nil, &failure{err: err}
		}
		defer fh.Close()
		r = fh
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var out []batchLine
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		job := map[string]json.RawMessage{}
		if !isObject(b) || json.Unmarshal(b, &job) != nil {
			return nil, &failure{err: fmt.Errorf("%s line %d: not a JSON object of one job", name, n)}
		}
		if len(over) > 0 {
			for k, v := range over {
				job[k] = v
			}
			var err error
			if b, err = json.Marshal(job); err != nil {
				return nil, &failure{err: err}
			}
		}
		out = append(out, batchLine{line: n, job: bytes.Clone(b)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line is longer than %d MiB", maxLineBytes>>20)
		}
		return nil, &failure{err: fmt.Errorf("%s: %w", name, err)}
	}
	if len(out) == 0 {
		return nil, &failure{err: fmt.Errorf("%s: no jobs", name)}
	}
	return out, nil
}

// batchResult is one element of POST /v1/jobs/batch's answer.
type batchResult struct {
	ID        int64 `json:"id"`
	Duplicate bool  `json:"duplicate"`
}

func (a *app) enqueueBatch(cmd *cobra.Command, f enqueueFlags, over map[string]json.RawMessage) error {
	lines, err := a.readBatch(f.batch, over)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	results := []batchResult{}
	var sendErr error
	for start := 0; start < len(lines); {
		end, size := start, 0
		for end < len(lines) && end-start < f.chunk && (end == start || size+len(lines[end].job)+1 <= maxChunkBytes) {
			size += len(lines[end].job) + 1
			end++
		}
		chunk := make([]json.RawMessage, end-start)
		for i := range chunk {
			chunk[i] = lines[start+i].job
		}
		raw, err := c.do(cmd.Context(), http.MethodPost, "/v1/jobs/batch", nil, map[string]any{"jobs": chunk})
		if err != nil {
			sendErr = batchError(err, lines, start)
			break
		}
		var resp struct {
			Jobs []batchResult `json:"jobs"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil || len(resp.Jobs) != len(chunk) {
			sendErr = fmt.Errorf("unexpected answer to the chunk from line %d", lines[start].line)
			break
		}
		results = append(results, resp.Jobs...)
		start = end
	}
	if err := a.printBatch(results, lines); err != nil {
		return err
	}
	return sendErr
}

// batchError says which line a refused chunk's error is about and which
// jobs were enqueued before it.
func batchError(err error, lines []batchLine, start int) error {
	first := lines[start].line
	done := fmt.Sprintf("the %d jobs before line %d were enqueued, none from it on", start, first)
	if start == 0 {
		done = "nothing was enqueued"
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.Index != nil && start+*ae.Index < len(lines) {
		return fmt.Errorf("line %d: %w; %s", lines[start+*ae.Index].line, err, done)
	}
	return fmt.Errorf("chunk from line %d: %w; %s", first, err, done)
}

func (a *app) printBatch(results []batchResult, lines []batchLine) error {
	if a.jsonOut() {
		return a.printValue(results)
	}
	if len(results) == 0 {
		return nil
	}
	t := newTable(a.stdout, "LINE", "ID", "DUPLICATE")
	for i, r := range results {
		t.row(strconv.Itoa(lines[i].line), strconv.FormatInt(r.ID, 10), strconv.FormatBool(r.Duplicate))
	}
	return t.flush()
}
