package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Scope is what a token may do.
type Scope string

// Scopes: ro may only read (GET); rw may also enqueue, cancel and retry.
const (
	ScopeRead  Scope = "ro"
	ScopeWrite Scope = "rw"
)

// Token is one accepted bearer token.
type Token struct {
	Secret string
	Scope  Scope
}

// String keeps the secret out of logs and error messages.
func (t Token) String() string { return "token(" + string(t.Scope) + ")" }

// ParseTokens reads "secret:scope" entries separated by commas; empty input
// means no tokens. The secret is what precedes the last colon.
func ParseTokens(s string) ([]Token, error) {
	var out []Token
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		cut := strings.LastIndexByte(entry, ':')
		if cut < 0 {
			return nil, fmt.Errorf("entry %d: want token:scope with scope ro or rw", i+1)
		}
		secret, scope := entry[:cut], Scope(entry[cut+1:])
		switch {
		case scope != ScopeRead && scope != ScopeWrite:
			return nil, fmt.Errorf("entry %d: scope %q: want ro or rw", i+1, scope)
		case secret == "" || strings.ContainsAny(secret, " \t"):
			return nil, fmt.Errorf("entry %d: token must be non-empty, without spaces", i+1)
		case seen[secret]:
			return nil, fmt.Errorf("entry %d: token listed twice", i+1)
		}
		seen[secret] = true
		out = append(out, Token{Secret: secret, Scope: scope})
	}
	return out, nil
}

// authenticate requires a bearer token on every matched route when tokens
// are configured. Secrets are compared as SHA-256 digests in constant time,
// and every token is compared, so timing reveals neither a token's length
// nor which one nearly matched.
func authenticate(tokens []Token) mux.MiddlewareFunc {
	if len(tokens) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	type digest struct {
		sum   [sha256.Size]byte
		scope Scope
	}
	digests := make([]digest, len(tokens))
	for i, t := range tokens {
		digests[i] = digest{sha256.Sum256([]byte(t.Secret)), t.Scope}
	}
	lookup := func(presented string) (Scope, bool) {
		sum := sha256.Sum256([]byte(presented))
		var found Scope
		for _, d := range digests {
			if subtle.ConstantTimeCompare(sum[:], d.sum[:]) == 1 {
				found = d.scope
			}
		}
		return found, found != ""
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			secret, err := bearer(r)
			scope, ok := lookup(secret)
			switch {
			case err != nil || !ok:
				writeError(w, r, &apiError{Status: http.StatusUnauthorized, Message: "missing or invalid bearer token"})
			case scope == ScopeRead && r.Method != http.MethodGet && r.Method != http.MethodHead:
				writeError(w, r, &apiError{Status: http.StatusForbidden, Message: "this token is read-only (scope ro)"})
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", errors.New("no bearer token")
	}
	return strings.TrimSpace(token), nil
}
