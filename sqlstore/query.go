package sqlstore

import "strings"

// queries is the SQL text of one store, built once by New from a
// validated layout. Each query takes the user's ID as its only value
// (MySQL's twice, see ownerFilter).
type queries struct {
	user, agents, scheduledTasks, workflows string
	args                                    int // how many times the user ID is bound
}

func buildQueries(d Dialect, l Layout) queries {
	q := func(name string) string { return d.quote(name) }
	cols := func(names ...string) string {
		for i, n := range names {
			names[i] = q(n)
		}
		return strings.Join(names, ", ")
	}
	ts := d.timestampColumn
	u, a, t, w := l.User, l.Agent, l.ScheduledTask, l.Workflow
	qs := queries{args: 1}
	if d == MySQL {
		qs.args = 2
	}
	qs.user = "SELECT " + cols(u.Email, u.Name, u.Plan, u.Role, u.ReferralCode, u.ReferralCredits) +
		" FROM " + q(u.Table) + " WHERE " + ownerFilter(d, u.ID)
	qs.agents = "SELECT " + cols(a.ID, a.Name, a.Model, a.Status) + ", " + ts(a.CreatedAt) + ", " + ts(a.UpdatedAt) +
		" FROM " + q(a.Table) + " WHERE " + ownerFilter(d, a.UserID) + " ORDER BY " + q(a.CreatedAt) + ", " + d.byteOrder(a.ID)
	qs.scheduledTasks = "SELECT " + cols(t.ID, t.Name, t.CronSchedule, t.Enabled) + ", " + ts(t.CreatedAt) +
		" FROM " + q(t.Table) + " WHERE " + ownerFilter(d, t.UserID) + " ORDER BY " + q(t.CreatedAt) + ", " + d.byteOrder(t.ID)
	qs.workflows = "SELECT " + cols(w.ID, w.Name, w.Enabled) + ", " + ts(w.CreatedAt) +
		" FROM " + q(w.Table) + " WHERE " + ownerFilter(d, w.UserID) + " ORDER BY " + q(w.CreatedAt) + ", " + d.byteOrder(w.ID)
	return qs
}

// ownerFilter selects the rows of one user, comparing IDs exactly.
//
// PostgreSQL (deterministic collations) and SQLite (BINARY) compare text
// exactly. MySQL's usual collations do not: under utf8mb4_unicode_ci or
// utf8mb4_0900_ai_ci, 'abc' = 'ABC' and 'abc' = 'abc ', so a plain
// equality could hand one user another's rows. The binary comparison
// makes it exact; the plain one before it keeps the index usable.
func ownerFilter(d Dialect, col string) string {
	c := d.quote(col)
	if d == MySQL {
		return c + " = ? AND CAST(" + c + " AS BINARY) = CAST(? AS BINARY)"
	}
	return c + " = " + d.placeholder(1)
}
