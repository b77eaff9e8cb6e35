package sqlstore

import "strings"

// queries is the SQL text of one store, built once by New from a
// validated layout. Each query takes the user's ID as its only value
// (MySQL's twice, see ownerFilter).
type queries struct {
	user                              string
	agents, scheduledTasks, workflows sectionQuery
	args                              int // how many times the user ID is bound
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
	// Each section's query in its forms (see packed.go), with the same
	// FROM, WHERE and ORDER BY.
	section := func(index int, op, table, userID, createdAt, id string, text []string, fields string, packed []string) sectionQuery {
		from := " FROM " + q(table) + " WHERE " + ownerFilter(d, userID)
		order := " ORDER BY " + q(createdAt) + ", " + d.byteOrder(id)
		sq := sectionQuery{pos: index, op: op, plain: "SELECT " + fields + from + order, table: table, text: text}
		if d != MySQL { // MySQL sorts by the byte-order expression whatever the index
			sq.createIndex = createIndex(d, table, userID, createdAt, id)
		}
		if d == SQLite {
			sq.packCols, sq.packRest = packed, from+order
			sq.packed = "SELECT " + packedColumn(d, packed, nil) + from + order
			sq.lookup = "SELECT " + fields + " FROM " + q(table) + " WHERE rowid = ? AND " + ownerFilter(d, userID)
		}
		return sq
	}
	qs.agents = section(0, OpAgents, a.Table, a.UserID, a.CreatedAt, a.ID, []string{a.ID, a.Name, a.Model, a.Status},
		cols(a.ID, a.Name, a.Model, a.Status)+", "+ts(a.CreatedAt)+", "+ts(a.UpdatedAt),
		[]string{a.ID, a.Name, a.Model, a.Status, a.CreatedAt, a.UpdatedAt})
	qs.scheduledTasks = section(1, OpScheduledTasks, t.Table, t.UserID, t.CreatedAt, t.ID, []string{t.ID, t.Name, t.CronSchedule},
		cols(t.ID, t.Name, t.CronSchedule, t.Enabled)+", "+ts(t.CreatedAt),
		[]string{t.ID, t.Name, t.CronSchedule, t.Enabled, t.CreatedAt})
	qs.workflows = section(2, OpWorkflows, w.Table, w.UserID, w.CreatedAt, w.ID, []string{w.ID, w.Name},
		cols(w.ID, w.Name, w.Enabled)+", "+ts(w.CreatedAt),
		[]string{w.ID, w.Name, w.Enabled, w.CreatedAt})
	return qs
}

// sections returns the built-in sections' queries in export order.
func (qs *queries) sections() []*sectionQuery {
	return []*sectionQuery{&qs.agents, &qs.scheduledTasks, &qs.workflows}
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
