package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"time"
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
// handling (DATETIME text arrives as time.Time; Agent.updatedAt holds
// integer milliseconds) and returns the indented JSON.
func naiveExport(ctx context.Context, db *sql.DB, userID string) ([]byte, error) {
	doc := naiveDocument{ExportedAt: time.Now().UTC(), Version: "1.0"}
	u := &doc.User
	err := db.QueryRowContext(ctx, "SELECT `id`, `email`, `name`, `plan`, `role`, `referralCode`, `referralCredits` FROM `User` WHERE `id` = ?", userID).
		Scan(&u.ID, &u.Email, &u.Name, &u.Plan, &u.Role, &u.ReferralCode, &u.ReferralCredits)
	if err != nil {
		return nil, err
	}

	rows, err := db.QueryContext(ctx, rawQueries[0], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var a naiveAgent
		var updated int64 // the column holds Unix milliseconds
		if err := rows.Scan(&a.ID, &a.Name, &a.Model, &a.Status, &a.CreatedAt, &updated); err != nil {
			return nil, err
		}
		a.UpdatedAt = time.UnixMilli(updated).UTC()
		doc.Agents = append(doc.Agents, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, rawQueries[1], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t naiveScheduledTask
		if err := rows.Scan(&t.ID, &t.Name, &t.CronSchedule, &t.Enabled, &t.CreatedAt); err != nil {
			return nil, err
		}
		doc.ScheduledTasks = append(doc.ScheduledTasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, rawQueries[2], userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var w naiveWorkflow
		if err := rows.Scan(&w.ID, &w.Name, &w.Enabled, &w.CreatedAt); err != nil {
			return nil, err
		}
		doc.Workflows = append(doc.Workflows, w)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}

// naiveHandler serves naiveExport for one fixed user (the baseline has no
// sessions: its cost is the export, not the sign-in).
func naiveHandler(db *sql.DB, userID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := naiveExport(r.Context(), db, userID)
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
