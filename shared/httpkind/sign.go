package httpkind

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Secret is a Standard Webhooks signing key, given as whsec_<base64>.
type Secret []byte

// ParseSecret reads a secret of the form whsec_<base64> (standard
// encoding), the form the Standard Webhooks libraries take, of 24 to 64
// bytes as the specification asks.
func ParseSecret(s string) (Secret, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("must have the form whsec_<base64>")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("the part after whsec_ is not standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the key is %d bytes; the Standard Webhooks specification asks for 24 to 64", len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message: "v1,"
// and the base64 of HMAC-SHA256(key, id.timestamp.body).
func (k Secret) Sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// MessageID is the webhook-id of a job's requests: the same on every
// attempt, so a receiver can recognise a retry it already handled.
func MessageID(jobID int64) string { return "spool_job_" + strconv.FormatInt(jobID, 10) }

// String keeps the key out of logs and error messages.
func (Secret) String() string { return "whsec_(redacted)" }
