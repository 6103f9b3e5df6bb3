package settings

import (
	"fmt"
	"strings"
)

// Token strength rule, checked before the API serves (CheckAuth): a bearer
// token is a password that never expires and is sent with every request, so
// a guessable one is refused rather than warned about.
const (
	// MinTokenLength is the fewest characters a token may have. 32 random
	// hex characters carry 128 bits; `openssl rand -hex 24` (48) and the
	// chart's generated token (40 alphanumerics, about 238 bits) pass.
	MinTokenLength = 32
	// MinTokenDistinct is the fewest different characters a token must use.
	// It refuses tokens that are long but repetitive (`aaaa…`, `0101…`,
	// `passwordpassword…`); a random token of 32 hex characters uses fewer
	// than 8 of the 16 with a probability below one in ten million.
	MinTokenDistinct = 8
)

// checkTokenStrength says what is wrong with a token without quoting it: at
// least MinTokenLength characters, at least MinTokenDistinct different ones,
// and not one shorter string repeated.
func checkTokenStrength(secret string) error {
	if n := len([]rune(secret)); n < MinTokenLength {
		return fmt.Errorf("is %d characters, want at least %d", n, MinTokenLength)
	}
	distinct := map[rune]bool{}
	for _, r := range secret {
		distinct[r] = true
	}
	if len(distinct) < MinTokenDistinct {
		return fmt.Errorf("uses %d different characters, want at least %d (low entropy)", len(distinct), MinTokenDistinct)
	}
	if p := period(secret); p > 0 {
		return fmt.Errorf("repeats a %d-character string (low entropy)", p)
	}
	return nil
}

// period is the length of the shortest string that s is two or more copies
// of, or 0.
func period(s string) int {
	for p := 1; p <= len(s)/2; p++ {
		if len(s)%p == 0 && strings.Repeat(s[:p], len(s)/p) == s {
			return p
		}
	}
	return 0
}
