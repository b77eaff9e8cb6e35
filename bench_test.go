package export_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentbot/export"
)

// benchDoc is the many-records golden case: 900 records, ~150 KB.
func benchDoc(b *testing.B) *export.Document {
	return goldenCases(b)["many-records"]
}

// BenchmarkEncode writes a Document in the contract's format.
func BenchmarkEncode(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc.Bytes())))
	b.ReportAllocs()
	for b.Loop() {
		doc.WriteTo(io.Discard)
	}
}

// naiveDoc is what a first Go version would write: tagged structs and
// json.MarshalIndent. It is the baseline of BenchmarkEncode (and its
// output is not even the contract's: it escapes <, > and &).
type naiveDoc struct {
	ExportedAt     string       `json:"exportedAt"`
	Version        string       `json:"version"`
	User           naiveUser    `json:"user"`
	Agents         []naiveAgent `json:"agents"`
	ScheduledTasks []naiveTask  `json:"scheduledTasks"`
	Workflows      []naiveFlow  `json:"workflows"`
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
	ID, Name, Model, Status string
	CreatedAt, UpdatedAt    string
}
type naiveTask struct {
	ID, Name, CronSchedule string
	Enabled                bool
	CreatedAt              string
}
type naiveFlow struct {
	ID, Name  string
	Enabled   bool
	CreatedAt string
}

func BenchmarkMarshalIndentBaseline(b *testing.B) {
	doc := benchDoc(b)
	b.SetBytes(int64(len(doc.Bytes())))
	b.ReportAllocs()
	ptr := func(n export.NullString) *string {
		if !n.Valid {
			return nil
		}
		return &n.String
	}
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	for b.Loop() {
		// Conversion is part of the naive cost: it loads and maps rows.
		n := naiveDoc{ExportedAt: ts(doc.ExportedAt), Version: export.Version, User: naiveUser{
			ID: doc.User.ID, Email: doc.User.Email, Name: ptr(doc.User.Name), Plan: ptr(doc.User.Plan),
			Role: doc.User.Role, ReferralCode: ptr(doc.User.ReferralCode), ReferralCredits: doc.User.ReferralCredits}}
		for _, a := range doc.Agents {
			n.Agents = append(n.Agents, naiveAgent{a.ID, a.Name, a.Model, a.Status, ts(a.CreatedAt), ts(a.UpdatedAt)})
		}
		for _, t := range doc.ScheduledTasks {
			n.ScheduledTasks = append(n.ScheduledTasks, naiveTask{t.ID, t.Name, t.CronSchedule, t.Enabled, ts(t.CreatedAt)})
		}
		for _, w := range doc.Workflows {
			n.Workflows = append(n.Workflows, naiveFlow{w.ID, w.Name, w.Enabled, ts(w.CreatedAt)})
		}
		out, _ := json.MarshalIndent(n, "", "  ")
		io.Discard.Write(out)
	}
}

// BenchmarkExportMemstore streams the same document from a memstore.
func BenchmarkExportMemstore(b *testing.B) {
	doc := benchDoc(b)
	exp := export.NewExporter(storeOf(b, doc))
	req := export.Request{UserID: doc.User.ID, ExportedAt: doc.ExportedAt}
	b.SetBytes(int64(len(doc.Bytes())))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := exp.Export(context.Background(), io.Discard, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandler is a whole GET through the handler (spooled in memory).
func BenchmarkHandler(b *testing.B) {
	doc := benchDoc(b)
	h := newTestHandler(b, storeOf(b, doc), fixedUser(doc.User.ID))
	req := httptest.NewRequest(http.MethodGet, "/api/export", nil)
	b.SetBytes(int64(len(doc.Bytes())))
	b.ReportAllocs()
	for b.Loop() {
		rec := &discardResponse{header: http.Header{}}
		h.ServeHTTP(rec, req)
		if rec.status != http.StatusOK {
			b.Fatal(rec.status)
		}
	}
}
