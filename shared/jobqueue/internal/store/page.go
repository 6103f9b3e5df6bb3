package store

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/spoolq/spool/shared/spooltype"
)

// rareStatuses are those the rare-status index (status, id) serves: a
// scan of one of them reads only its own rows.
var rareStatuses = []spooltype.Status{spooltype.StatusRetrying, spooltype.StatusDead, spooltype.StatusCancelled, spooltype.StatusBlocked}

// ListPage is List with its cursor: next is the After of the following
// page, 0 on the last one. With p.ScanLimit > 0, a type or queue filter
// (which no index serves: each would cost every claim and completion an
// index entry, a fifth of the throughput, measured) examines at most that
// many of the newest jobs from p.After, of the status if one is given and
// indexed, else of any status. A page can then hold fewer jobs than asked,
// none even, with a next cursor that goes on from where the scan stopped:
// a page's cost is bounded however deep the backlog.
func (s *Store) ListPage(ctx context.Context, db DBTX, p spooltype.ListParams) (jobs []*Job, next int64, err error) {
	if p.ScanLimit <= 0 || (p.Kind == "" && p.Queue == "") {
		q := p
		q.Limit++ // one more than asked tells whether another page exists
		if jobs, err = s.List(ctx, db, q); err != nil || len(jobs) <= p.Limit {
			return jobs, 0, err
		}
		jobs = jobs[:p.Limit]
		return jobs, jobs[p.Limit-1].ID, nil
	}
	ids, low, scanned, err := s.scanWindow(ctx, db, p)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case len(ids) > p.Limit:
		ids = ids[:p.Limit]
		next = ids[p.Limit-1]
	case scanned == p.ScanLimit:
		next = low
	}
	jobs, err = s.byIDs(ctx, db, ids, p.Brief)
	return jobs, next, err
}

// scanWindow reads the newest p.ScanLimit jobs below p.After (of p.Status
// when an index serves it) and returns the ids of those matching p's
// filters, newest first, with the lowest id read and how many were read.
func (s *Store) scanWindow(ctx context.Context, db DBTX, p spooltype.ListParams) (ids []int64, low int64, scanned int, err error) {
	args := []any{p.ScanLimit}
	var window, match []string
	add := func(to *[]string, cond string, v any) {
		args = append(args, v)
		*to = append(*to, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if p.After > 0 {
		add(&window, "id < ?", p.After)
	}
	if p.Status != "" {
		if slices.Contains(rareStatuses, p.Status) {
			add(&window, "status = ?", string(p.Status))
		} else {
			add(&match, "status = ?", string(p.Status))
		}
	}
	if p.Kind != "" {
		add(&match, "type = ?", p.Kind)
	}
	if p.Queue != "" {
		add(&match, "queue = ?", p.Queue)
	}
	where := "true"
	if len(window) > 0 {
		where = strings.Join(window, " AND ")
	}
	err = db.QueryRow(ctx, s.sql(`SELECT coalesce(array_agg(id ORDER BY id DESC) FILTER (WHERE `+strings.Join(match, " AND ")+`), '{}'),
			coalesce(min(id), 0), count(*)
		FROM (SELECT id, status, type, queue FROM spool.spool_jobs WHERE `+where+` ORDER BY id DESC LIMIT $1) AS w`), args...).
		Scan(&ids, &low, &scanned)
	return ids, low, scanned, Interpret(err)
}

// byIDs reads the jobs with these ids, newest first.
func (s *Store) byIDs(ctx context.Context, db DBTX, ids []int64, brief bool) ([]*Job, error) {
	if len(ids) == 0 {
		return []*Job{}, nil
	}
	cols := jobColumns
	if brief {
		cols = listColumns
	}
	rows, err := db.Query(ctx, s.sql(`SELECT `+cols+` FROM spool.spool_jobs WHERE id = ANY($1) ORDER BY id DESC`), ids)
	if err != nil {
		return nil, Interpret(err)
	}
	jobs, err := scanJobs(rows)
	return jobs, Interpret(err)
}
