package main

import (
	"strings"
	"testing"
	"time"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// TestGenerate checks that the generated data has what the comparison
// claims it has.
func TestGenerate(t *testing.T) {
	sh := shape{big: 4000, second: 1000, others: 50, otherRows: 20}
	var users []*userRow
	var nullModel, shared, switches int
	perUser := map[string]int{}
	last := map[string]time.Time{}
	var prevUser string
	var prevAt time.Time
	err := generate(sh, func(u *userRow) error {
		users = append(users, u)
		return nil
	}, func(r *record) error {
		perUser[r.userID]++
		if r.model == nil {
			nullModel++
		}
		l, ok := last[r.userID]
		if ok && r.created.Before(l) {
			t.Fatalf("%s: record at %v after one at %v", r.userID, r.created, l)
		}
		isShared := ok && r.created.Equal(l)
		if isShared {
			shared++
		}
		// In time order across the accounts, but for the shared instants.
		if r.created.Before(prevAt) && !isShared {
			t.Fatalf("records out of time order: %v after %v", r.created, prevAt)
		}
		last[r.userID] = r.created
		if r.userID != prevUser {
			switches++
		}
		prevUser, prevAt = r.userID, r.created
		for _, id := range []string{r.agentID, r.taskID, r.flowID} {
			if len(id) != 25 {
				t.Fatalf("ID %q is not 25 characters", id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2+sh.others {
		t.Fatalf("%d users", len(users))
	}
	if perUser[bigUserID] != sh.big || perUser[secondUserID] != sh.second || perUser[otherUserID(7)] != sh.otherRows {
		t.Fatalf("records per user: %d, %d, %d", perUser[bigUserID], perUser[secondUserID], perUser[otherUserID(7)])
	}
	total := sh.big + sh.second + sh.others*sh.otherRows
	if r := float64(nullModel) / float64(total); r < 0.2 || r > 0.3 {
		t.Errorf("%.2f of the models are NULL, want about a quarter", r)
	}
	if r := float64(shared) / float64(total); r < 0.01 || r > 0.03 {
		t.Errorf("%.3f of the records share their account's previous instant, want about 1 in 50", r)
	}
	if switches < total/4 {
		t.Errorf("the owner changes %d times in %d records: the accounts do not interleave", switches, total)
	}
	if users[0].id != bigUserID || users[0].name != nil || users[0].email == nil {
		t.Errorf("the big account should have an email and a NULL name")
	}
	var nullEmail, nullName, nullCode int
	for _, u := range users {
		if u.email == nil {
			nullEmail++
		}
		if u.name == nil {
			nullName++
		}
		if u.referralCode == nil {
			nullCode++
		}
	}
	if nullEmail == 0 || nullEmail > len(users)/5 || nullName == 0 || nullCode == 0 {
		t.Errorf("NULL emails %d, names %d, referral codes %d of %d users", nullEmail, nullName, nullCode, len(users))
	}
	if id := firstNullEmail(sh); id == "" || !strings.HasPrefix(id, "clbenchother") {
		t.Errorf("firstNullEmail = %q", id)
	}
}

func TestTimestampForms(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)
	for _, c := range []struct{ got, want string }{
		{isoText(at), "2026-03-01T09:00:00.123Z"},
		{spaceText(at), "2026-03-01 09:00:00.123"},
		{offsetText(at), "2026-03-01 11:00:00.123456+02:00"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestIndexStatements(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL} {
		stmts, err := compositeIndexStatements(d, "")
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if !strings.Contains(stmts[0], "Agent_userId_createdAt_id_idx") {
			t.Errorf("%v: %q", d, stmts[0])
		}
		if d == sqlstore.Postgres && !strings.Contains(stmts[0], `COLLATE "C"`) {
			t.Errorf("%v: %q has no COLLATE \"C\"", d, stmts[0])
		}
	}
	// The application's own indexes come with its tables.
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL} {
		ddl := strings.Join(sqlfixture.AppSchema(d, ""), "\n")
		for _, idx := range sectionIndexes {
			if !strings.Contains(ddl, idx) {
				t.Errorf("%v: sqlfixture.AppSchema has no %s", d, idx)
			}
		}
	}
}

func TestWithSearchPath(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=bench&sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db?search_path=bench"},
		{"host=h dbname=db", "host=h dbname=db search_path=bench"},
	} {
		if got := withSearchPath(c.dsn, "bench"); got != c.want {
			t.Errorf("withSearchPath(%q) = %q, want %q", c.dsn, got, c.want)
		}
	}
}
