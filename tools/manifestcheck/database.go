package manifestcheck

import (
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// checkBundledDatabase: the bundled PostgreSQL keeps its superuser to itself.
// Its superuser is the image's `postgres` (POSTGRES_USER unset or postgres);
// an init script mounted at /docker-entrypoint-initdb.d creates the role
// Spool connects as (SPOOL_DB_USER) with NOSUPERUSER; that role is not the
// superuser, and it is the user of the services' DATABASE_URL when the
// rendering carries that Secret; and no other pod reads the Secret holding
// the superuser's password.
func (ix *index) checkBundledDatabase(fail func(string, ...any)) {
	for _, w := range ix.workloads {
		if w.template.Labels["app.kubernetes.io/component"] != "postgresql" {
			continue
		}
		for _, c := range w.template.Spec.Containers {
			if c.Name != "postgresql" {
				continue
			}
			ix.checkPostgresContainer(w, c, fail)
		}
	}
}

func (ix *index) checkPostgresContainer(w workload, c corev1.Container, fail func(string, ...any)) {
	env := ix.env(c)
	super := env["POSTGRES_USER"]
	if super == "" {
		super = "postgres"
	}
	if super != "postgres" {
		fail("%s: POSTGRES_USER=%s makes that role the superuser; leave it postgres and let the init script create Spool's role", w, super)
	}
	role := env["SPOOL_DB_USER"]
	switch {
	case role == "":
		fail("%s: no SPOOL_DB_USER: the init script does not know which role to create", w)
	case role == super:
		fail("%s: Spool's role %s is the superuser", w, role)
	}

	// The init script: mounted where the image runs it, creating a non-superuser.
	var initCM string
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/docker-entrypoint-initdb.d" {
			continue
		}
		for _, v := range w.template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				initCM = v.ConfigMap.Name
			}
		}
	}
	if initCM == "" {
		fail("%s: no ConfigMap mounted at /docker-entrypoint-initdb.d (the init script creating Spool's role)", w)
	} else if cm := ix.configMaps[initCM]; cm == nil {
		fail("%s: init ConfigMap %s is not rendered", w, initCM)
	} else {
		created := false
		for _, script := range cm.Data {
			if strings.Contains(script, "CREATE ROLE") && strings.Contains(script, "NOSUPERUSER") && strings.Contains(script, "$SPOOL_DB_USER") {
				created = true
			}
		}
		if !created {
			fail("%s: init ConfigMap %s does not CREATE ROLE $SPOOL_DB_USER ... NOSUPERUSER", w, initCM)
		}
	}

	// The superuser's password: only this container reads its Secret.
	var superSecret string
	for _, e := range c.Env {
		if e.Name == "POSTGRES_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			superSecret = e.ValueFrom.SecretKeyRef.Name
		}
	}
	if superSecret == "" {
		fail("%s: POSTGRES_PASSWORD does not come from a Secret", w)
	}
	for _, other := range ix.workloads {
		if other.name == w.name {
			continue
		}
		for _, oc := range slices.Concat(other.template.Spec.InitContainers, other.template.Spec.Containers) {
			for _, e := range oc.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == superSecret {
					fail("%s container %s: reads %s, the Secret of the database superuser's password", other, oc.Name, superSecret)
				}
			}
			for _, ef := range oc.EnvFrom {
				if ef.SecretRef != nil && ef.SecretRef.Name == superSecret {
					fail("%s container %s: reads %s, the Secret of the database superuser's password", other, oc.Name, superSecret)
				}
			}
		}
	}

	// The services' URL names Spool's role (when the Secret is rendered).
	for _, other := range ix.workloads {
		for _, oc := range other.template.Spec.Containers {
			if spoolRole(oc) == "" {
				continue
			}
			for _, e := range oc.Env {
				if e.Name != "DATABASE_URL" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				r := e.ValueFrom.SecretKeyRef
				s := ix.secrets[r.Name]
				if s == nil {
					continue // an external Secret (plain manifests)
				}
				raw := s.StringData[r.Key]
				if raw == "" {
					raw = string(s.Data[r.Key])
				}
				u, err := url.Parse(raw)
				if err != nil || u.User == nil {
					fail("%s container %s: DATABASE_URL in Secret %s names no user", other, oc.Name, r.Name)
					continue
				}
				if user := u.User.Username(); user != role || user == super {
					fail("%s container %s: DATABASE_URL connects as %q, want Spool's role %q (not the superuser %q)", other, oc.Name, user, role, super)
				}
			}
		}
	}
}

// checkGoMemLimit: every API and worker container with a memory limit sets
// GOMEMLIMIT, below that limit, so the Go runtime collects garbage before
// the kernel kills the container.
func (ix *index) checkGoMemLimit(where string, c corev1.Container, fail func(string, ...any)) {
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if spoolRole(c) == "" || !ok {
		return
	}
	v, ok := ix.env(c)["GOMEMLIMIT"]
	if !ok {
		fail("%s: memory limit %s but no GOMEMLIMIT", where, limit.String())
		return
	}
	// GOMEMLIMIT's suffixes are B, KiB, MiB, GiB, TiB: without the B they
	// are a quantity's.
	q, err := resource.ParseQuantity(strings.TrimSuffix(v, "B"))
	if err != nil {
		fail("%s: GOMEMLIMIT %q: %v", where, v, err)
		return
	}
	if q.Cmp(limit) >= 0 {
		fail("%s: GOMEMLIMIT %s is not below the memory limit %s", where, v, limit.String())
	}
}
