package proctest

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI: the CI environment variable is
// set (CI sets CI=true). There a test must not skip for want of a tool.
func InCI() bool { return os.Getenv("CI") != "" }

// Unavailable ends a test that cannot run here because something outside Go
// (a program) is missing: a developer's run skips it with why, which should
// say how to install it; in CI it fails, so a test cannot stop running
// unnoticed.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI is set: failing instead of skipping)", why)
	}
	t.Skip(why)
}

// LookPath returns the path of the program name the test needs, or ends the
// test with Unavailable(why) when it is not on $PATH.
func LookPath(t testing.TB, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, why)
	}
	return p
}
