package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// jsonOut reports whether -o json was asked for.
func (a *app) jsonOut() bool { return a.output == "json" }

// printJSON writes raw JSON indented, as the API sent it otherwise.
func (a *app) printJSON(raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("print JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

// printValue writes v as indented JSON.
func (a *app) printValue(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.printJSON(raw)
}

// member returns the raw value of key in the object raw: the array or
// object an answer wraps ({"jobs": [...]}, {"job": {...}}).
func member(raw json.RawMessage, key string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("unexpected answer: %w", err)
	}
	v, ok := obj[key]
	if !ok {
		return nil, fmt.Errorf("unexpected answer: no %q", key)
	}
	return v, nil
}

// decodeMember decodes the value of key in raw into v.
func decodeMember(raw json.RawMessage, key string, v any) error {
	m, err := member(raw, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(m, v); err != nil {
		return fmt.Errorf("unexpected answer: %s: %w", key, err)
	}
	return nil
}

// table writes aligned columns; cells are cleaned of tabs and line
// breaks, which would break the alignment.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cellText(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

var cellCleaner = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

func cellText(s string) string { return cellCleaner.Replace(s) }

// fmtTime is a time for people: local, to the second; "-" for none.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ptrOrDash[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// compactJSON is raw on one line, clipped to n bytes.
func compactJSON(raw json.RawMessage, n int) string {
	if len(raw) == 0 {
		return "-"
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return clip(string(raw), n)
	}
	return clip(buf.String(), n)
}

// keyValues writes one object as aligned "key: value" lines.
func keyValues(w io.Writer, pairs [][2]string) error {
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(t, "%s:\t%s\n", p[0], cellText(p[1]))
	}
	return t.Flush()
}
