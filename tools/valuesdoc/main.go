// Command valuesdoc writes the values table of a Helm chart's README from
// the "# --" comments in its values.yaml, and checks that every key has one.
//
//	go -C tools run ./valuesdoc -values helm/spool/values.yaml -readme helm/spool/README.md
//
// A key is documented by a head comment whose first line starts with "# -- ".
// A documented map's children need no comments of their own (a Kubernetes
// object such as a securityContext is one value); an undocumented key must be
// a map with documented keys below it (a section). The table replaces the
// README text between the lines <!-- values:start --> and <!-- values:end -->.
// With -check nothing is written; the exit status is 1 when the README is
// out of date or a key is undocumented.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

const (
	startMarker = "<!-- values:start -->"
	endMarker   = "<!-- values:end -->"
)

func main() {
	valuesPath := flag.String("values", "values.yaml", "values file")
	readmePath := flag.String("readme", "README.md", "README to update")
	check := flag.Bool("check", false, "only check; exit 1 when the README is out of date")
	flag.Parse()
	if err := run(*valuesPath, *readmePath, *check); err != nil {
		fmt.Fprintln(os.Stderr, "valuesdoc:", err)
		os.Exit(1)
	}
}

func run(valuesPath, readmePath string, check bool) error {
	values, err := os.ReadFile(valuesPath)
	if err != nil {
		return err
	}
	table, err := Table(values)
	if err != nil {
		return err
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	updated, err := Splice(readme, table)
	if err != nil {
		return fmt.Errorf("%s: %w", readmePath, err)
	}
	if bytes.Equal(updated, readme) {
		return nil
	}
	if check {
		return fmt.Errorf("%s: values table is out of date; run make chart-docs", filepath.Base(readmePath))
	}
	return os.WriteFile(readmePath, updated, 0o644)
}

// Row is one documented key.
type Row struct {
	Key, Type, Default, Description string
}

// Rows returns the documented keys of a values file in file order, or an
// error naming every undocumented key.
func Rows(values []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("values file is not a map")
	}
	var rows []Row
	var errs []error
	var walk func(prefix string, m *yaml.Node, documented bool) bool
	// walk returns whether m has a documented key anywhere below it.
	walk = func(prefix string, m *yaml.Node, documented bool) bool {
		any := false
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc, ok := description(k.HeadComment)
			if ok {
				any = true
				rows = append(rows, Row{Key: key, Type: typeOf(v), Default: defaultOf(v), Description: desc})
			}
			below := false
			if v.Kind == yaml.MappingNode {
				below = walk(key+".", v, documented || ok)
			}
			any = any || below
			if !ok && !below && !documented {
				errs = append(errs, fmt.Errorf("line %d: %s has no \"# -- \" comment", k.Line, key))
			}
		}
		return any
	}
	walk("", doc.Content[0], false)
	return rows, errors.Join(errs...)
}

func description(head string) (string, bool) {
	var lines []string
	found := false
	for _, l := range strings.Split(head, "\n") {
		l = strings.TrimSpace(l)
		if s, ok := strings.CutPrefix(l, "# -- "); ok {
			found = true
			lines = []string{s}
			continue
		}
		if found {
			if s, ok := strings.CutPrefix(l, "# "); ok {
				lines = append(lines, s)
			}
		}
	}
	return strings.Join(lines, " "), found
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!int":
		return "int"
	case "!!bool":
		return "bool"
	case "!!float":
		return "number"
	case "!!null":
		return "null"
	}
	return "string"
}

func defaultOf(v *yaml.Node) string {
	var x any
	if err := v.Decode(&x); err != nil {
		return "?"
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "?"
	}
	return string(b)
}

// Table renders the values table as Markdown.
func Table(values []byte) (string, error) {
	rows, err := Rows(values)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	esc := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", r.Key, r.Type, esc.Replace(r.Default), esc.Replace(r.Description))
	}
	return b.String(), nil
}

// Splice replaces the text between the markers with table.
func Splice(readme []byte, table string) ([]byte, error) {
	s := string(readme)
	i := strings.Index(s, startMarker)
	j := strings.Index(s, endMarker)
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %s ... %s block", startMarker, endMarker)
	}
	return []byte(s[:i+len(startMarker)] + "\n" + table + s[j:]), nil
}
