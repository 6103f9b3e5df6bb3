package httpkind

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SealedPrefix starts a sealed header value: the rest is the base64
// (URL alphabet, unpadded) of a nonce and the AES-256-GCM ciphertext.
const SealedPrefix = "sealed:v1:"

// alwaysSecret are the header names whose values are sealed whatever
// SPOOL_HTTP_SECRET_HEADERS says.
var alwaysSecret = []string{"authorization", "cookie"}

// Sealer seals secret header values before a job is written and opens
// them just before the request goes out, so that the database, the API's
// answers and the dashboard hold only ciphertext. A value is bound to its
// header name and its destination host: copied into a job for another
// host, or under another name, it does not open.
type Sealer struct {
	keys   []cipher.AEAD // the first seals; all of them open (rotation)
	secret map[string]bool
}

// NewSealer reads keys (SPOOL_HTTP_HEADER_KEY: comma-separated standard
// base64 of 32 bytes each, the newest first; empty: no key) and the extra
// secret header names (SPOOL_HTTP_SECRET_HEADERS, comma-separated).
func NewSealer(keys, names string) (*Sealer, error) {
	s := &Sealer{secret: map[string]bool{}}
	for _, n := range alwaysSecret {
		s.secret[n] = true
	}
	for n := range strings.SplitSeq(names, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !validName(n) {
			return nil, fmt.Errorf("SPOOL_HTTP_SECRET_HEADERS: %q is not a header name", n)
		}
		s.secret[strings.ToLower(n)] = true
	}
	for k := range strings.SplitSeq(keys, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("SPOOL_HTTP_HEADER_KEY: %w", err)
		}
		s.keys = append(s.keys, aead)
	}
	return s, nil
}

func newAEAD(k string) (cipher.AEAD, error) {
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("each key must be the standard base64 of 32 random bytes (openssl rand -base64 32)")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Secret reports whether a header's value must be sealed.
func (s *Sealer) Secret(name string) bool { return s.secret[strings.ToLower(name)] }

// CanSeal reports whether the sealer has a key.
func (s *Sealer) CanSeal() bool { return len(s.keys) > 0 }

// Sealed reports whether v is a sealed value.
func Sealed(v string) bool { return strings.HasPrefix(v, SealedPrefix) }

// Seal seals the value of header name for a request to host.
func (s *Sealer) Seal(name, host, value string) (string, error) {
	if !s.CanSeal() {
		return "", errors.New("no SPOOL_HTTP_HEADER_KEY to seal it with")
	}
	k := s.keys[0]
	nonce := make([]byte, k.NonceSize(), k.NonceSize()+len(value)+k.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := k.Seal(nonce, nonce, []byte(value), boundTo(name, host))
	return SealedPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open returns the value a sealed value of header name for host holds.
func (s *Sealer) Open(name, host, sealed string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, SealedPrefix))
	if !Sealed(sealed) || err != nil {
		return "", errors.New("not a sealed value")
	}
	for _, k := range s.keys {
		if len(raw) < k.NonceSize() {
			break
		}
		if v, err := k.Open(nil, raw[:k.NonceSize()], raw[k.NonceSize():], boundTo(name, host)); err == nil {
			return string(v), nil
		}
	}
	return "", errors.New("does not open with SPOOL_HTTP_HEADER_KEY (another key, another header name or another host)")
}

// boundTo is the additional data a value is sealed with.
func boundTo(name, host string) []byte {
	return []byte("spool-http-header\x00" + strings.ToLower(name) + "\x00" + normalHost(host))
}

// SealRequest seals, in place, the values of r's secret headers that are
// not sealed yet, and checks those that are (they must open for r's host);
// a Go client calls it before enqueueing a request with such headers, as
// the API does.
func (s *Sealer) SealRequest(r *Request) error {
	u, err := r.target()
	if err != nil {
		return err
	}
	for name, v := range r.Headers {
		switch {
		case Sealed(v):
			if _, err := s.Open(name, u.Hostname(), v); err != nil {
				return fmt.Errorf("headers: the value of %s %w", name, err)
			}
		case s.Secret(name):
			sealed, err := s.Seal(name, u.Hostname(), v)
			if err != nil {
				return fmt.Errorf("headers: %s is a secret header and is stored only sealed: %w", name, err)
			}
			r.Headers[name] = sealed
		}
	}
	return nil
}

// openHeaders returns r's headers with their sealed values opened; a
// secret header whose value is not sealed is refused, as it should never
// have been stored.
func (s *Sealer) openHeaders(r Request, host string) (map[string]string, error) {
	out := make(map[string]string, len(r.Headers))
	for name, v := range r.Headers {
		switch {
		case Sealed(v):
			open, err := s.Open(name, host, v)
			if err != nil {
				return nil, fmt.Errorf("headers: the value of %s %w", name, err)
			}
			out[name] = open
		case s.Secret(name):
			return nil, fmt.Errorf("headers: %s is a secret header but its value is not sealed (the API seals it; a Go client calls Sealer.SealRequest)", name)
		default:
			out[name] = v
		}
	}
	return out, nil
}
