package main

import (
	"path/filepath"
	"strings"
	"testing"
)

var chart = filepath.Join("..", "..", "helm", "spool")

// TestChartValuesDocumented: every key of the chart's values.yaml has a
// comment and the README's table matches it (make chart-docs fixes it).
func TestChartValuesDocumented(t *testing.T) {
	if err := run(filepath.Join(chart, "values.yaml"), filepath.Join(chart, "README.md"), true); err != nil {
		t.Fatal(err)
	}
}

func TestRowsRejectUndocumented(t *testing.T) {
	values := `
# -- documented
a: 1
section:
  # -- documented child
  b: true
  c: ""
# -- a Kubernetes object: children need no comments
obj:
  runAsUser: 1
`
	rows, err := Rows([]byte(values))
	if err == nil || !strings.Contains(err.Error(), "section.c has no") || strings.Contains(err.Error(), "obj.") {
		t.Fatalf("got err %v, want only section.c reported", err)
	}
	if len(rows) != 3 || rows[1].Key != "section.b" || rows[2].Default != `{"runAsUser":1}` {
		t.Errorf("rows: %+v", rows)
	}
}
