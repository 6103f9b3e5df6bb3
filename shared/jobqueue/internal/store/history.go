package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// A job's error history is bounded, so a job that fails often with long
// messages cannot grow its row (and the WAL of every update to it) without
// limit: each message is cut to MaxErrorBytes, and the history keeps the
// first HistoryFirst entries (how it started failing) and the newest ones
// up to HistoryKept in all, counting the entries it drops in
// errors_dropped.
const (
	MaxErrorBytes = 4 << 10
	HistoryKept   = 20
	HistoryFirst  = 3
)

// appendError is the SET clause that records one failed attempt with
// message $msg in the history of row j, under the bounds above.
func appendError(msg string) string {
	return fmt.Sprintf(`last_error = %[1]s,
		errors_dropped = j.errors_dropped + (jsonb_array_length(j.errors) >= %[2]d)::int,
		errors = CASE WHEN jsonb_array_length(j.errors) >= %[2]d THEN j.errors - %[3]d ELSE j.errors END
			|| jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'error', %[1]s::text,
				'at', now(), 'worker_id', j.worker_id))`, msg, HistoryKept, HistoryFirst)
}

// ClipError makes msg storable and bounded: invalid UTF-8 and U+0000
// (which text columns refuse, so the write would fail and the outcome be
// lost) become U+FFFD, and a message longer than MaxErrorBytes is cut on a
// character boundary, saying how much was cut.
func ClipError(msg string) string {
	msg = strings.ToValidUTF8(strings.ReplaceAll(msg, "\x00", "\uFFFD"), "\uFFFD")
	if len(msg) <= MaxErrorBytes {
		return msg
	}
	const room = MaxErrorBytes - 40 // for the note
	cut := room
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… [%d bytes cut]", msg[:cut], len(msg)-cut)
}
