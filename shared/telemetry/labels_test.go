package telemetry

import (
	"fmt"
	"testing"
)

func TestBoundedAdmitsTheFirstValuesOnly(t *testing.T) {
	b := NewBounded(3)
	for i := range 10 {
		want := fmt.Sprint(i)
		if i >= 3 {
			want = OtherLabel
		}
		if got := b.Label(fmt.Sprint(i)); got != want {
			t.Fatalf("Label(%d) = %q, want %q", i, got, want)
		}
	}
	if got := b.Label("1"); got != "1" {
		t.Fatalf("an admitted value became %q", got)
	}
}
