package jobs

import "testing"

func TestHasNUL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want bool
	}{
		{`{"a":"x"}`, false},
		{`{"a":"\u0000"}`, true},
		{`{"a":"\\u0000"}`, false},   // an escaped backslash, then text
		{`{"a":"\\\u0000"}`, true},   // a backslash, then NUL
		{`{"\u0000":1}`, true},       // keys too
		{`{"a":"\u00001"}`, true},    // NUL followed by a digit
		{`{"a":"\\\\u0000"}`, false}, // two backslashes, then text
	}
	for _, tc := range cases {
		if got := HasNUL([]byte(tc.in)); got != tc.want {
			t.Errorf("HasNUL(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
