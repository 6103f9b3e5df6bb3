package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Exit codes scripts can rely on (docs/cli.md lists them).
const (
	exitOK          = 0
	exitFailure     = 1 // the API answered an error, or a check failed
	exitUsage       = 2 // bad command line: unknown command or flag, wrong arguments
	exitUnreachable = 3 // the API (or, for migrate, the database) cannot be reached
	exitNotFound    = 4 // the API answered 404: no such job, workflow, schedule, limit or route
)

// usageError is a command line the CLI refuses before sending anything.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// unreachableError is a request that got no HTTP answer (or a database
// that could not be opened): nothing is known to have happened.
type unreachableError struct {
	what string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s: %v", e.what, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// failure is any other error of a command that ran: a file it could not
// read, a check that failed.
type failure struct{ err error }

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// apiError is an error answer of the API, read from either of its error
// shapes (see parseAPIError).
type apiError struct {
	HTTPStatus int
	Message    string
	Field      string
	Index      *int
	JobStatus  string
	KnownTypes []string
	RequestID  string
	// RetryAfter is the answer's Retry-After (a 429 or 503), as sent.
	RetryAfter string
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.JobStatus != "" && !strings.Contains(e.Message, e.JobStatus) {
		fmt.Fprintf(&b, " (job status %s)", e.JobStatus)
	}
	if len(e.KnownTypes) > 0 {
		fmt.Fprintf(&b, "; known types: %s", strings.Join(e.KnownTypes, ", "))
	}
	fmt.Fprintf(&b, " [HTTP %d", e.HTTPStatus)
	if e.RequestID != "" {
		fmt.Fprintf(&b, ", request %s", e.RequestID)
	}
	b.WriteString("]")
	if e.RetryAfter != "" {
		fmt.Fprintf(&b, "; retry after %ss", e.RetryAfter)
	}
	return b.String()
}

// exitCode maps an error to the process's exit code. Errors of no kind
// above come from cobra's parsing of the command line: usage errors.
func exitCode(err error) int {
	var (
		ae    *apiError
		ue    *usageError
		unr   *unreachableError
		other *failure
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ae):
		if ae.HTTPStatus == http.StatusNotFound {
			return exitNotFound
		}
		return exitFailure
	case errors.As(err, &unr):
		return exitUnreachable
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &other):
		return exitFailure
	}
	return exitUsage
}

// report prints err, if any, on stderr and returns the exit code.
func (a *app) report(err error) int {
	code := exitCode(err)
	if err == nil {
		return code
	}
	fmt.Fprintf(a.stderr, "spool: %v\n", err)
	if code == exitUsage {
		fmt.Fprintln(a.stderr, "Run 'spool --help' (or 'spool <command> --help') for usage.")
	}
	return code
}
