package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
)

// File is the schedules file Kubernetes mounts from a ConfigMap
// (SPOOL_SCHEDULES_FILE): {"schedules": [{"name": …, "spec": …, …}]}.
type File struct {
	Schedules []Schedule `json:"schedules"`
}

// LoadFile reads a schedules file; Sync validates its schedules.
func LoadFile(path string) ([]Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedules file: %w", err)
	}
	return ParseFile(b)
}

// ParseFile decodes a schedules file's contents strictly and checks what
// needs no database: names (unique), specs, zones, queues, priorities.
// Payloads are checked against their kinds when the schedules are stored.
func ParseFile(b []byte) ([]Schedule, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("schedules file: %w", err)
	}
	seen := map[string]bool{}
	for i := range f.Schedules {
		s := &f.Schedules[i]
		if err := s.Validate(context.Background(), anyPayload{}); err != nil {
			return nil, fmt.Errorf("schedules file: schedule %d (%q): %w", i, s.Name, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("schedules file: %w: name %q used twice", ErrInvalid, s.Name)
		}
		seen[s.Name] = true
		s.Source = "file"
	}
	return f.Schedules, nil
}

// Sync makes the file-sourced schedules in the database match the file:
// upserts every schedule in it and removes file schedules no longer there.
// Schedules created over the API are left alone. The file is the
// operator's: it is not held to the store's cap.
func (st *Store) Sync(ctx context.Context, schedules []Schedule) error {
	names := make([]string, 0, len(schedules))
	for i := range schedules {
		if _, err := st.put(ctx, &schedules[i], -1); err != nil {
			return fmt.Errorf("schedule %q: %w", schedules[i].Name, err)
		}
		names = append(names, schedules[i].Name)
	}
	_, err := st.pool.Exec(ctx, st.sql(`DELETE FROM spool.spool_schedules WHERE source = 'file' AND NOT (name = ANY($1))`), names)
	return err
}

// anyPayload accepts every payload: a file is parsed before its kinds can
// be looked up; Put checks them.
type anyPayload struct{}

func (anyPayload) Validate(context.Context, string, []byte) error { return nil }
