package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/agentbot/export/sqlstore"
)

// The naive export is the version a Go team writes first: structs with
// json tags and time.Time fields, every row loaded into slices, then
// json.MarshalIndent of the lot, written in one go. It is the baseline
// the library is measured against, not a model: it holds the whole account
// in memory twice (structs, then JSON), and its output is not even the
// contract's (encoding/json escapes <, > and &, and writes times with up
// to nine fraction digits, where JSON.stringify writes three).

type naiveDocument struct {
	ExportedAt     time.Time            `json:"exportedAt"`
	Version        string               `json:"version"`
	User           naiveUser            `json:"user"`
	Agents         []naiveAgent         `json:"agents"`
	ScheduledTasks []naiveScheduledTask `json:"scheduledTasks"`
	Workflows      []naiveWorkflow      `json:"workflows"`
}

type naiveUser struct {
	ID              string  `json:"id"`
	Email           string  `json:"email"`
	Name            *string `json:"name"`
	Plan            *string `json:"plan"`
	Role            string  `json:"role"`
	ReferralCode    *string `json:"referralCode"`
	ReferralCredits int64   `json:"referralCredits"`
}

type naiveAgent struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Model     string    `json:"model"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

type naiveScheduledTask struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	CronSchedule string    `json:"cronSchedule"`
	Enabled      bool      `json:"enabled"`
	CreatedAt    time.Time `json:"createdAt"`
}

type naiveWorkflow struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"createdAt"`
}

// naiveExport reads the user's data with the driver's default column
// handling (DATETIME text arrives as time.Time; SQLite's Agent.updatedAt
// holds integer milliseconds) and returns the indented JSON. The nullable
// string columns the format has as strings (email, model) are scanned
// into sql.NullString and written as "" when NULL, as the contract says.
func naiveExport(ctx context.Context, db *sql.DB, d sqlstore.Dialect, userID string) ([]byte, error) {
	q := queriesFor(d)
	doc := naiveDocument{ExportedAt: time.Now().UTC(), Version: "1.0"}
	u := &doc.User
	var email sql.NullString
	err := db.QueryRowContext(ctx, q.user, userID).
		Scan(&u.ID, &email, &u.Name, &u.Plan, &u.Role, &u.ReferralCode, &u.ReferralCredits)
	if err != nil {
		return nil, err
	}
	u.Email = email.String

	rows, err := db.QueryContext(ctx, q.sections[0], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a naiveAgent
		var model sql.NullString
		var created, updated naiveTime
		if err := rows.Scan(&a.ID, &a.Name, &model, &a.Status, &created, &updated); err != nil {
			return nil, err
		}
		a.Model, a.CreatedAt, a.UpdatedAt = model.String, created.Time, updated.Time
		doc.Agents = append(doc.Agents, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, q.sections[1], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t naiveScheduledTask
		var created naiveTime
		if err := rows.Scan(&t.ID, &t.Name, &t.CronSchedule, &t.Enabled, &created); err != nil {
			return nil, err
		}
		t.CreatedAt = created.Time
		doc.ScheduledTasks = append(doc.ScheduledTasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, q.sections[2], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var w naiveWorkflow
		var created naiveTime
		if err := rows.Scan(&w.ID, &w.Name, &w.Enabled, &created); err != nil {
			return nil, err
		}
		w.CreatedAt = created.Time
		doc.Workflows = append(doc.Workflows, w)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}

// naiveTime scans what the drivers give for a timestamp column: a
// time.Time (DATETIME text in SQLite, PostgreSQL's timestamp, MySQL with
// parseTime), integer Unix milliseconds (SQLite), or text (MySQL without
// parseTime).
type naiveTime struct{ time.Time }

func (t *naiveTime) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		t.Time = v.UTC()
		return nil
	case int64:
		t.Time = time.UnixMilli(v).UTC()
		return nil
	case []byte:
		return t.parse(string(v))
	case string:
		return t.parse(v)
	}
	return fmt.Errorf("naive: cannot read %T as a time", v)
}

func (t *naiveTime) parse(s string) error {
	p, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	t.Time = p
	return err
}

// naiveHandler serves naiveExport for one fixed user (the baseline has no
// sessions: its cost is the export, not the sign-in).
func naiveHandler(db *sql.DB, d sqlstore.Dialect, userID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := naiveExport(r.Context(), db, d, userID)
		if err != nil {
			http.Error(w, "export failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="export.json"`)
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
}

// decodeNaive reads the naive handler's output back.
func decodeNaive(s string) (naiveDocument, error) {
	var d naiveDocument
	err := json.Unmarshal([]byte(s), &d)
	return d, err
}
