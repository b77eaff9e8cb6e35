package sqlstore

import (
	"fmt"
	"strings"
)

// Layout names the tables and columns the export reads. Only these columns
// are ever selected: whatever else the host's tables hold (configuration,
// key hashes, tokens) is never read.
//
// Every name must be a plain SQL identifier: a letter or underscore, then
// letters, digits or underscores, at most 63 bytes. A table may be
// qualified by a schema ("app.users"). Names are always quoted in the SQL,
// so case is kept exactly and reserved words ("User", "order") are fine;
// names that are not plain identifiers are refused, so a layout read from
// configuration can never inject SQL.
type Layout struct {
	User          UserTable
	Agent         AgentTable
	ScheduledTask ScheduledTaskTable
	Workflow      WorkflowTable
}

// UserTable is the table of accounts; one row per user.
type UserTable struct {
	Table, ID, Email, Name, Plan, Role, ReferralCode, ReferralCredits string
}

// AgentTable is the table of agents; UserID is the owning user's ID.
type AgentTable struct {
	Table, ID, UserID, Name, Model, Status, CreatedAt, UpdatedAt string
}

// ScheduledTaskTable is the table of scheduled tasks.
type ScheduledTaskTable struct {
	Table, ID, UserID, Name, CronSchedule, Enabled, CreatedAt string
}

// WorkflowTable is the table of workflows.
type WorkflowTable struct {
	Table, ID, UserID, Name, Enabled, CreatedAt string
}

// PrismaLayout is the layout of the application this library replaces,
// as its ORM (Prisma) generated it: quoted PascalCase tables ("User",
// "Agent", "ScheduledTask", "Workflow") and camelCase columns ("userId",
// "createdAt"). It is the default.
func PrismaLayout() Layout {
	return Layout{
		User: UserTable{Table: "User", ID: "id", Email: "email", Name: "name", Plan: "plan", Role: "role",
			ReferralCode: "referralCode", ReferralCredits: "referralCredits"},
		Agent: AgentTable{Table: "Agent", ID: "id", UserID: "userId", Name: "name", Model: "model", Status: "status",
			CreatedAt: "createdAt", UpdatedAt: "updatedAt"},
		ScheduledTask: ScheduledTaskTable{Table: "ScheduledTask", ID: "id", UserID: "userId", Name: "name",
			CronSchedule: "cronSchedule", Enabled: "enabled", CreatedAt: "createdAt"},
		Workflow: WorkflowTable{Table: "Workflow", ID: "id", UserID: "userId", Name: "name", Enabled: "enabled",
			CreatedAt: "createdAt"},
	}
}

// SnakeCaseLayout is the conventional hand-written layout: plural
// snake_case tables (users, agents, scheduled_tasks, workflows) and
// snake_case columns (user_id, created_at, referral_code...).
func SnakeCaseLayout() Layout {
	return Layout{
		User: UserTable{Table: "users", ID: "id", Email: "email", Name: "name", Plan: "plan", Role: "role",
			ReferralCode: "referral_code", ReferralCredits: "referral_credits"},
		Agent: AgentTable{Table: "agents", ID: "id", UserID: "user_id", Name: "name", Model: "model", Status: "status",
			CreatedAt: "created_at", UpdatedAt: "updated_at"},
		ScheduledTask: ScheduledTaskTable{Table: "scheduled_tasks", ID: "id", UserID: "user_id", Name: "name",
			CronSchedule: "cron_schedule", Enabled: "enabled", CreatedAt: "created_at"},
		Workflow: WorkflowTable{Table: "workflows", ID: "id", UserID: "user_id", Name: "name", Enabled: "enabled",
			CreatedAt: "created_at"},
	}
}

// LayoutNames lists the names LayoutByName knows, default first.
func LayoutNames() []string { return []string{"prisma", "snake_case"} }

// LayoutByName returns a preset by name, for flags and configuration:
// "prisma" (PrismaLayout) or "snake_case" (SnakeCaseLayout).
func LayoutByName(name string) (Layout, error) {
	switch name {
	case "prisma":
		return PrismaLayout(), nil
	case "snake_case":
		return SnakeCaseLayout(), nil
	}
	return Layout{}, fmt.Errorf("sqlstore: unknown layout %q (known: %s)", name, strings.Join(LayoutNames(), ", "))
}

// Validate reports the first name that is not a plain identifier.
func (l Layout) Validate() error {
	for _, f := range l.fields() {
		if err := validName(f.value, f.table); err != nil {
			return fmt.Errorf("sqlstore: layout %s: %w", f.path, err)
		}
	}
	return nil
}

type layoutField struct {
	path, value string
	table       bool // a table name, which may be schema-qualified
}

func (l Layout) fields() []layoutField {
	u, a, t, w := l.User, l.Agent, l.ScheduledTask, l.Workflow
	return []layoutField{
		{"User.Table", u.Table, true}, {"User.ID", u.ID, false}, {"User.Email", u.Email, false},
		{"User.Name", u.Name, false}, {"User.Plan", u.Plan, false}, {"User.Role", u.Role, false},
		{"User.ReferralCode", u.ReferralCode, false}, {"User.ReferralCredits", u.ReferralCredits, false},
		{"Agent.Table", a.Table, true}, {"Agent.ID", a.ID, false}, {"Agent.UserID", a.UserID, false},
		{"Agent.Name", a.Name, false}, {"Agent.Model", a.Model, false}, {"Agent.Status", a.Status, false},
		{"Agent.CreatedAt", a.CreatedAt, false}, {"Agent.UpdatedAt", a.UpdatedAt, false},
		{"ScheduledTask.Table", t.Table, true}, {"ScheduledTask.ID", t.ID, false},
		{"ScheduledTask.UserID", t.UserID, false}, {"ScheduledTask.Name", t.Name, false},
		{"ScheduledTask.CronSchedule", t.CronSchedule, false}, {"ScheduledTask.Enabled", t.Enabled, false},
		{"ScheduledTask.CreatedAt", t.CreatedAt, false},
		{"Workflow.Table", w.Table, true}, {"Workflow.ID", w.ID, false}, {"Workflow.UserID", w.UserID, false},
		{"Workflow.Name", w.Name, false}, {"Workflow.Enabled", w.Enabled, false},
		{"Workflow.CreatedAt", w.CreatedAt, false},
	}
}

// maxIdent is PostgreSQL's limit (MySQL allows 64, SQLite more), so a
// layout valid for one dialect is valid for all.
const maxIdent = 63

func validName(name string, qualified bool) error {
	parts := []string{name}
	if qualified {
		if schema, table, ok := strings.Cut(name, "."); ok {
			parts = []string{schema, table}
		}
	}
	for _, p := range parts {
		if !isIdent(p) {
			return fmt.Errorf("%q is not a plain identifier (letters, digits and _, not starting with a digit, at most %d bytes)", name, maxIdent)
		}
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" || len(s) > maxIdent {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
