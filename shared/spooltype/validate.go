package spooltype

import (
	"fmt"
	"unicode/utf8"
)

// The input rules every path shares: the library checks them before any
// query and the API relies on the library; the tables' CHECK constraints
// state their lengths (migration 007).
const (
	MaxQueueName = 64
	MaxKindName  = 128
	MaxKeyBytes  = 255 // idempotency keys
	MinPriority  = -1000
	MaxPriority  = 1000
	MaxAttempts  = 1000
)

// CheckQueueName refuses a queue name that is not 1-64 characters of
// a-z, 0-9, '_', '.' and '-'. Queue names end up in metric labels and URL
// paths, so they are kept plain.
func CheckQueueName(name string) error {
	if !plainName(name, MaxQueueName, false) {
		return &InvalidError{Field: "queue", Reason: fmt.Sprintf("must be 1 to %d characters of a-z, 0-9, '_', '.' and '-'", MaxQueueName)}
	}
	return nil
}

// CheckKindName refuses a kind name that is not 1-128 characters of
// letters, digits, '_', '.', ':' and '-'. Names are stable strings chosen
// by people (send_email, billing.invoice), never derived from Go types.
func CheckKindName(name string) error {
	if !plainName(name, MaxKindName, true) {
		return &InvalidError{Field: "type", Reason: fmt.Sprintf("must be 1 to %d characters of letters, digits, '_', '.', ':' and '-'", MaxKindName)}
	}
	return nil
}

func plainName(s string, maxLen int, kind bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		case kind && (c >= 'A' && c <= 'Z' || c == ':'):
		default:
			return false
		}
	}
	return true
}

// ValidText reports whether PostgreSQL's text type can store s: it must be
// valid UTF-8 without U+0000, or the server refuses it (SQLSTATE 22021)
// and the caller would see an internal error instead of a refusal.
func ValidText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return utf8.ValidString(s)
}

// CheckKey refuses an idempotency key that is empty, longer than 255 bytes
// or not storable text.
func CheckKey(k string) error {
	if k == "" || len(k) > MaxKeyBytes || !ValidText(k) {
		return &InvalidError{Field: "idempotency_key", Reason: fmt.Sprintf("must be 1 to %d bytes of UTF-8, without U+0000", MaxKeyBytes)}
	}
	return nil
}
