package httpkind

import (
	"context"
	"testing"
)

// A name the list does not hold is refused without a DNS lookup when no
// CIDR could allow its address; with a CIDR in the list it must be
// resolved first (and is taken when it cannot be, for the worker to decide).
func TestEnqueueCheckNames(t *testing.T) {
	byName, err := EnqueueCheck(Settings{AllowedHosts: "hooks.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for url, refused := range map[string]bool{
		"https://other.example/x":  true,
		"https://hooks.example/in": false,
		"http://127.0.0.1/":        true,
		"http://localhost/":        true,
	} {
		_, err := byName(context.Background(), []byte(`{"url":"`+url+`"}`))
		if (err != nil) != refused {
			t.Errorf("%s: %v, want refused %v", url, err, refused)
		}
	}
}
