-- Test migration of `make e2e-k8s` only (scripts/k8s/e2e.sh, phase 6): the
-- e2e builds a second pair of images (tag e2e-v2) with this file added to
-- shared/postgres/migrations, and `helm upgrade`s to them while jobs run.
-- The new pods' migrate initContainers add the column under the migration
-- lock while the old pods, built for the schema without it, still work.
-- Numbered 900 so it never collides with Spool's own migrations.
ALTER TABLE spool.spool_jobs ADD COLUMN e2e_upgrade_note text;
