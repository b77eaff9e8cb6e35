// Package storetest is the conformance suite for export.Store. Every
// store in this module runs it, and so can a host's own store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Harness {
//			s := mystore.New(...)
//			return storetest.Harness{Store: s, Fixture: myFixture{s}}
//		})
//	}
//
// It checks what the export.Store and export.Tx documentation promises:
// ordering by creation time at full precision then ID in byte order,
// nulls, empty sections, a missing user, isolation between users, a
// consistent view under concurrent writes, early exit and cancellation;
// and, given the host's added sections (Harness.Notes, Harness.Owned),
// that they read the same view and hold only the user's records.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentbot/export"
)

// Fixture writes test data into the store under test. Each method commits
// before it returns.
type Fixture interface {
	PutUser(ctx context.Context, u export.User) error
	DeleteUser(ctx context.Context, userID string) error
	PutAgent(ctx context.Context, userID string, a export.Agent) error
	PutScheduledTask(ctx context.Context, userID string, t export.ScheduledTask) error
	PutWorkflow(ctx context.Context, userID string, w export.Workflow) error
}

// Harness is one store under test and the means to fill it.
type Harness struct {
	Store   export.Store
	Fixture Fixture
	// Precision is the finest time step the store keeps (time.Millisecond
	// for a timestamp(3) column); zero means nanoseconds. Timestamps read
	// back are compared after truncation to it, and ordering is tested at
	// that resolution.
	Precision time.Duration

	// Notes, if set, is a section the host adds (export.Section) on this
	// store, for the AddedSection tests; nil skips them.
	Notes *Notes

	// Owned are sections the host adds whose records say which user
	// they belong to, for the AddedSectionsHoldOnlyTheUsersRows test;
	// none skips it.
	Owned []OwnedSection
}

// OwnedSection is an added section whose records name their owner: the
// field Owner of each record holds the ID of the user it belongs to. The
// suite stores records for several users with look-alike IDs and checks
// that an export holds the user's records, all of them, and no other
// user's. (sqlstore refuses a query that does not bind the user's ID; one
// that binds it and still reads other users' rows is what this catches.)
type OwnedSection struct {
	Section export.Section
	Owner   string // the key of the field holding the owner's user ID
	// Put stores one record of the user's with the given ID, committed
	// before it returns.
	Put func(ctx context.Context, userID, id string) error
}

// Notes is an added section named "notes" on the store under test: each
// record has the fields "id" and "body", both strings, written in that
// order; Section yields the view's user's notes ordered by id.
type Notes struct {
	Section export.Section
	// Put stores one note of the user's, committed before it returns.
	Put func(ctx context.Context, userID, id, body string) error
}

// Run runs the whole suite, each test in a subtest with a Harness from
// newHarness (which may return the same store each time: every test uses
// user IDs of its own).
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"MissingUser", testMissingUser},
		{"DeletedUser", testDeletedUser},
		{"EmptySections", testEmptySections},
		{"UserFieldsAndNulls", testUserFields},
		{"RecordsRoundTrip", testRecordsRoundTrip},
		{"Ordering", testOrdering},
		{"Isolation", testIsolation},
		{"LookalikeUserIDs", testLookalikeIDs},
		{"IterateTwiceAndBreakEarly", testIterateTwice},
		{"FnErrorReturnedUnchanged", testFnError},
		{"CanceledBeforeView", testCanceledBefore},
		{"CanceledDuringView", testCanceledDuring},
		{"ConcurrentViews", testConcurrentViews},
		{"ConsistentUnderConcurrentWrites", testConsistency},
		{"LargeSectionsWithWritesMidRead", testLargeSections},
		{"AddedSection", testAddedSection},
		{"AddedSectionInTheSameView", testAddedSectionSameView},
		{"AddedSectionsHoldOnlyTheUsersRows", testOwnedSections},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Precision <= 0 {
				h.Precision = time.Nanosecond
			}
			tc.fn(t, &suite{h: h, prefix: idPrefix(t)})
		})
	}
}

type suite struct {
	h      Harness
	prefix string
}

var runSeq atomic.Int64

// idPrefix makes the user and record IDs of one test unique across runs
// and tests, so a store shared by all tests (or a reused database) works.
// IDs stay short: cuid-like IDs in real tables are 25 characters.
func idPrefix(*testing.T) string {
	return "t" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + strconv.FormatInt(runSeq.Add(1), 36) + "_"
}

func (s *suite) id(name string) string { return s.prefix + name }

// base is a fixed instant with no sub-second part, in a zone other than
// UTC, so stores that mishandle zones are caught.
var base = time.Date(2026, 3, 1, 2, 0, 0, 0, time.FixedZone("CEST", 2*3600))

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (s *suite) newUser(t *testing.T, name string) export.User {
	t.Helper()
	u := export.User{
		ID: s.id(name), Email: name + "@example.com", Name: export.Some("User " + name),
		Plan: export.Some("solo"), Role: "user", ReferralCode: export.Some("REF" + name), ReferralCredits: 3,
	}
	must(t, s.h.Fixture.PutUser(ctxFor(t), u))
	return u
}

// snapshot is what one view saw.
type snapshot struct {
	user      export.User
	agents    []export.Agent
	tasks     []export.ScheduledTask
	workflows []export.Workflow
}

func (s *suite) read(t *testing.T, userID string) (snapshot, error) {
	t.Helper()
	ctx := ctxFor(t)
	var snap snapshot
	err := s.h.Store.View(ctx, userID, func(tx export.Tx) error {
		var err error
		if snap.user, err = tx.User(ctx); err != nil {
			return err
		}
		if snap.agents, err = drain(tx.Agents(ctx)); err != nil {
			return err
		}
		if snap.tasks, err = drain(tx.ScheduledTasks(ctx)); err != nil {
			return err
		}
		snap.workflows, err = drain(tx.Workflows(ctx))
		return err
	})
	return snap, err
}

func drain[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func testMissingUser(t *testing.T, s *suite) {
	for _, id := range []string{s.id("nobody"), ""} {
		called := false
		err := s.h.Store.View(ctxFor(t), id, func(export.Tx) error { called = true; return nil })
		if !errors.Is(err, export.ErrUserNotFound) {
			t.Errorf("View(%q) = %v, want an error that is export.ErrUserNotFound", id, err)
		}
		if called {
			t.Errorf("View(%q) called fn for a user that does not exist", id)
		}
	}
}

func testDeletedUser(t *testing.T, s *suite) {
	u := s.newUser(t, "gone")
	must(t, s.h.Fixture.PutAgent(ctxFor(t), u.ID, export.Agent{ID: s.id("a1"), Name: "n", Model: "m", Status: "running", CreatedAt: base, UpdatedAt: base}))
	if _, err := s.read(t, u.ID); err != nil {
		t.Fatalf("before delete: %v", err)
	}
	must(t, s.h.Fixture.DeleteUser(ctxFor(t), u.ID))
	if _, err := s.read(t, u.ID); !errors.Is(err, export.ErrUserNotFound) {
		t.Fatalf("after delete: err = %v, want export.ErrUserNotFound", err)
	}
}

func testEmptySections(t *testing.T, s *suite) {
	u := s.newUser(t, "empty")
	snap, err := s.read(t, u.ID)
	must(t, err)
	if snap.user != u {
		t.Errorf("User() = %+v, want %+v", snap.user, u)
	}
	if len(snap.agents)+len(snap.tasks)+len(snap.workflows) != 0 {
		t.Errorf("a user with no records has %d agents, %d tasks, %d workflows", len(snap.agents), len(snap.tasks), len(snap.workflows))
	}
	// The document must still say [] for each section.
	doc, err := export.ReadDocument(ctxFor(t), s.h.Store, u.ID, base)
	must(t, err)
	if doc.Agents == nil || doc.ScheduledTasks == nil || doc.Workflows == nil {
		t.Errorf("ReadDocument left a nil section: %+v", doc)
	}
}

// awkward strings every store must keep byte for byte.
var awkward = []string{
	"", "plain", `quote " and backslash \`, "tab\tnew\nline\rcr", "<script>&amp;</script>",
	"ünïcödé", "emoji 🎉👩‍💻", "line sep \u2028 para sep \u2029", "日本語のテキスト", strings.Repeat("long ", 400),
}

func testUserFields(t *testing.T, s *suite) {
	cases := []export.User{
		{ID: s.id("nulls"), Email: "n@example.com", Role: "user"},
		{ID: s.id("full"), Email: "f@example.com", Name: export.Some("Jane \"JD\" Doe 🎉"), Plan: export.Some("collective"),
			Role: "admin", ReferralCode: export.Some("REF-ü"), ReferralCredits: 2147483647},
		{ID: s.id("emptystr"), Email: "", Name: export.Some(""), Plan: export.Some(""), Role: "", ReferralCode: export.Some(""), ReferralCredits: -5},
	}
	for i, str := range awkward {
		cases = append(cases, export.User{ID: s.id("aw" + strconv.Itoa(i)), Email: str, Name: export.Some(str), Role: str, ReferralCode: export.Some(str)})
	}
	for _, u := range cases {
		must(t, s.h.Fixture.PutUser(ctxFor(t), u))
	}
	for _, u := range cases {
		snap, err := s.read(t, u.ID)
		if err != nil {
			t.Errorf("%s: %v", u.ID, err)
			continue
		}
		if snap.user != u {
			t.Errorf("User() =\n %+v\nwant\n %+v", snap.user, u)
		}
	}
}

func (s *suite) trunc(tm time.Time) time.Time { return tm.Truncate(s.h.Precision) }

func testRecordsRoundTrip(t *testing.T, s *suite) {
	u := s.newUser(t, "rt")
	ctx := ctxFor(t)
	// Sub-precision parts in another zone: the store keeps what its
	// precision allows and reads the same instant back.
	at := base.Add(123456789 * time.Nanosecond)
	var agents []export.Agent
	var tasks []export.ScheduledTask
	var wfs []export.Workflow
	for i, str := range awkward {
		c := at.Add(time.Duration(i) * time.Second)
		agents = append(agents, export.Agent{ID: s.id("a" + strconv.Itoa(i)), Name: str, Model: str, Status: str, CreatedAt: c, UpdatedAt: c.Add(time.Hour + 987654*time.Nanosecond)})
		tasks = append(tasks, export.ScheduledTask{ID: s.id("t" + strconv.Itoa(i)), Name: str, CronSchedule: str, Enabled: i%2 == 0, CreatedAt: c})
		wfs = append(wfs, export.Workflow{ID: s.id("w" + strconv.Itoa(i)), Name: str, Enabled: i%2 == 1, CreatedAt: c})
	}
	for i := range agents {
		must(t, s.h.Fixture.PutAgent(ctx, u.ID, agents[i]))
		must(t, s.h.Fixture.PutScheduledTask(ctx, u.ID, tasks[i]))
		must(t, s.h.Fixture.PutWorkflow(ctx, u.ID, wfs[i]))
	}
	snap, err := s.read(t, u.ID)
	must(t, err)
	compare(t, "agents", snap.agents, agents, func(a export.Agent) export.Agent {
		a.CreatedAt, a.UpdatedAt = s.trunc(a.CreatedAt).UTC(), s.trunc(a.UpdatedAt).UTC()
		return a
	})
	compare(t, "scheduled tasks", snap.tasks, tasks, func(x export.ScheduledTask) export.ScheduledTask {
		x.CreatedAt = s.trunc(x.CreatedAt).UTC()
		return x
	})
	compare(t, "workflows", snap.workflows, wfs, func(x export.Workflow) export.Workflow {
		x.CreatedAt = s.trunc(x.CreatedAt).UTC()
		return x
	})
}

// compare checks got against want after normalising both (times to UTC
// at the store's precision, so == compares instants).
func compare[T comparable](t *testing.T, what string, got, want []T, norm func(T) T) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d records, want %d\n got %+v\nwant %+v", what, len(got), len(want), got, want)
		return
	}
	for i := range got {
		if g, w := norm(got[i]), norm(want[i]); g != w {
			t.Errorf("%s[%d]:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

// testOrdering inserts records in a shuffled order: times that differ by
// one step of the store's precision, and ties broken by IDs whose byte
// order differs from any locale's collation (upper before lower case,
// '-' and '_' apart, accents after ASCII).
func testOrdering(t *testing.T, s *suite) {
	u := s.newUser(t, "order")
	ctx := ctxFor(t)
	tieIDs := []string{"a", "B", "Z", "_x", "-y", "é", "aa", "a b", "A", "0", "z~"}
	type rec struct {
		id string
		at time.Time
	}
	var recs []rec
	for i := range 5 {
		recs = append(recs, rec{s.id("step" + strconv.Itoa(i)), base.Add(time.Duration(5-i) * s.h.Precision)})
	}
	for _, id := range tieIDs {
		recs = append(recs, rec{s.id(id), base})
	}
	// A much older and a much newer one, in another zone.
	recs = append(recs, rec{s.id("old"), base.Add(-72 * time.Hour).In(time.FixedZone("X", -7*3600))})
	recs = append(recs, rec{s.id("new"), base.Add(72 * time.Hour).UTC()})
	rand.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	for _, r := range recs {
		must(t, s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: r.id, Name: r.id, Model: "m", Status: "s", CreatedAt: r.at, UpdatedAt: r.at}))
		must(t, s.h.Fixture.PutScheduledTask(ctx, u.ID, export.ScheduledTask{ID: r.id, Name: r.id, CronSchedule: "* * * * *", CreatedAt: r.at}))
		must(t, s.h.Fixture.PutWorkflow(ctx, u.ID, export.Workflow{ID: r.id, Name: r.id, CreatedAt: r.at}))
	}
	slices.SortFunc(recs, func(a, b rec) int { return export.Compare(a.at, a.id, b.at, b.id) })
	var want []string
	for _, r := range recs {
		want = append(want, r.id)
	}
	snap, err := s.read(t, u.ID)
	must(t, err)
	check := func(section string, got []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s in order\n %q\nwant\n %q", section, got, want)
		}
	}
	check("agents", ids(snap.agents, func(a export.Agent) string { return a.ID }))
	check("scheduled tasks", ids(snap.tasks, func(x export.ScheduledTask) string { return x.ID }))
	check("workflows", ids(snap.workflows, func(x export.Workflow) string { return x.ID }))
}

func ids[T any](s []T, id func(T) string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = id(v)
	}
	return out
}

func testIsolation(t *testing.T, s *suite) {
	ctx := ctxFor(t)
	a, b := s.newUser(t, "alice"), s.newUser(t, "bob")
	for i, u := range []export.User{a, b} {
		for j := range 3 {
			id := u.ID + "-" + strconv.Itoa(j)
			c := base.Add(time.Duration(i*10+j) * time.Second)
			must(t, s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: id, Name: u.ID, CreatedAt: c, UpdatedAt: c}))
			must(t, s.h.Fixture.PutScheduledTask(ctx, u.ID, export.ScheduledTask{ID: id, Name: u.ID, CreatedAt: c}))
			must(t, s.h.Fixture.PutWorkflow(ctx, u.ID, export.Workflow{ID: id, Name: u.ID, CreatedAt: c}))
		}
	}
	must(t, s.h.Fixture.DeleteUser(ctx, b.ID))
	snap, err := s.read(t, a.ID)
	must(t, err)
	if snap.user != a {
		t.Errorf("User() = %+v, want %+v", snap.user, a)
	}
	if len(snap.agents) != 3 || len(snap.tasks) != 3 || len(snap.workflows) != 3 {
		t.Errorf("alice has %d/%d/%d records after bob was deleted, want 3/3/3", len(snap.agents), len(snap.tasks), len(snap.workflows))
	}
	for _, name := range slices.Concat(
		ids(snap.agents, func(x export.Agent) string { return x.Name }),
		ids(snap.tasks, func(x export.ScheduledTask) string { return x.Name }),
		ids(snap.workflows, func(x export.Workflow) string { return x.Name })) {
		if name != a.ID {
			t.Errorf("alice's view holds a record of %q", name)
		}
	}
}

// testLookalikeIDs gives users IDs that a case-insensitive or
// space-padding comparison (MySQL's usual collations) takes for equal:
// each must still see only their own row and records.
func testLookalikeIDs(t *testing.T, s *suite) {
	ctx := ctxFor(t)
	users := []export.User{
		{ID: s.id("Look"), Email: "upper@example.com", Role: "user"},
		{ID: s.id("look"), Email: "lower@example.com", Role: "user"},
		{ID: s.id("look") + " ", Email: "padded@example.com", Role: "user"},
	}
	for i, u := range users {
		must(t, s.h.Fixture.PutUser(ctx, u))
		must(t, s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: s.id("lookagent" + strconv.Itoa(i)), Name: u.Email, CreatedAt: base, UpdatedAt: base}))
	}
	for _, u := range users {
		snap, err := s.read(t, u.ID)
		must(t, err)
		if snap.user != u {
			t.Errorf("View(%q).User() = %+v, want %+v", u.ID, snap.user, u)
		}
		if len(snap.agents) != 1 || snap.agents[0].Name != u.Email {
			t.Errorf("View(%q) agents = %+v, want only the agent named %q", u.ID, snap.agents, u.Email)
		}
	}
}

func (s *suite) seedAgents(t *testing.T, userID string, n int) {
	t.Helper()
	ctx := ctxFor(t)
	for i := range n {
		c := base.Add(time.Duration(i) * time.Second)
		must(t, s.h.Fixture.PutAgent(ctx, userID, export.Agent{ID: fmt.Sprintf("%s%05d", s.id("a"), i), Name: "n", Model: "m", Status: "s", CreatedAt: c, UpdatedAt: c}))
	}
}

func testIterateTwice(t *testing.T, s *suite) {
	u := s.newUser(t, "twice")
	s.seedAgents(t, u.ID, 5)
	ctx := ctxFor(t)
	err := s.h.Store.View(ctx, u.ID, func(tx export.Tx) error {
		for _, err := range tx.Agents(ctx) {
			if err != nil {
				return err
			}
			break // leave after one: the store must release what it holds
		}
		// A fresh iterator, then the same iterator value ranged twice.
		seq := tx.Agents(ctx)
		for i, s := range []iter.Seq2[export.Agent, error]{tx.Agents(ctx), seq, seq} {
			got, err := drain(s)
			if err != nil {
				return err
			}
			if len(got) != 5 {
				t.Errorf("two iterations differ: iteration %d yields %v, want 5 agents", i, ids(got, agentID))
			}
		}
		_, err := drain(tx.Workflows(ctx))
		return err
	})
	must(t, err)
}

func agentID(a export.Agent) string { return a.ID }

func testFnError(t *testing.T, s *suite) {
	u := s.newUser(t, "fnerr")
	sentinel := errors.New("sentinel from fn")
	err := s.h.Store.View(ctxFor(t), u.ID, func(export.Tx) error { return sentinel })
	if !errors.Is(err, sentinel) {
		t.Fatalf("View returned %v, want fn's error", err)
	}
	// The store is still usable after a failed fn.
	if _, err := s.read(t, u.ID); err != nil {
		t.Fatal(err)
	}
}

func testCanceledBefore(t *testing.T, s *suite) {
	u := s.newUser(t, "cancel0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.h.Store.View(ctx, u.ID, func(tx export.Tx) error {
		_, err := drain(tx.Agents(ctx))
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("View with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
}

func testCanceledDuring(t *testing.T, s *suite) {
	u := s.newUser(t, "cancel1")
	s.seedAgents(t, u.ID, 500)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := s.h.Store.View(ctx, u.ID, func(tx export.Tx) error {
		for _, err := range tx.Agents(ctx) {
			if err != nil {
				return err
			}
			if n++; n == 1 {
				cancel()
			}
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled after the first of 500 records: View = %v after %d records, want an error wrapping context.Canceled", err, n)
	}
	// Afterwards the store serves other views normally.
	if _, err := s.read(t, u.ID); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentViews(t *testing.T, s *suite) {
	u := s.newUser(t, "conc")
	s.seedAgents(t, u.ID, 50)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				snap, err := s.read(t, u.ID)
				if err != nil {
					t.Error(err)
					return
				}
				if len(snap.agents) != 50 {
					t.Errorf("got %d agents, want 50", len(snap.agents))
				}
			}
		})
	}
	wg.Wait()
}

// testConsistency has a writer add records one at a time, cycling through
// the three sections, while views read the sections with pauses between
// them. Record k is written after record k-1 has committed, so a view of
// one point in time sees exactly records 0..m for some m: a view that
// reads each section at a different moment sees later records in a later
// section while missing earlier ones in an earlier section.
func testConsistency(t *testing.T, s *suite) {
	u := s.newUser(t, "consistent")
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for k := 0; ctx.Err() == nil && k < 100000; k++ {
			id := fmt.Sprintf("%s%06d", s.id("r"), k)
			c := base.Add(time.Duration(k) * time.Second)
			var err error
			switch k % 3 {
			case 0:
				err = s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: id, CreatedAt: c, UpdatedAt: c})
			case 1:
				err = s.h.Fixture.PutScheduledTask(ctx, u.ID, export.ScheduledTask{ID: id, CreatedAt: c})
			case 2:
				err = s.h.Fixture.PutWorkflow(ctx, u.ID, export.Workflow{ID: id, CreatedAt: c})
			}
			if err != nil {
				if ctx.Err() == nil {
					done <- err
				}
				return
			}
			written.Store(int64(k + 1))
		}
	}()
	pause := func() {
		// Let the writer commit more before the next section is read.
		for start := written.Load(); written.Load() < start+2; {
			select {
			case <-ctx.Done():
				return
			case err := <-done:
				if err != nil {
					t.Errorf("writer: %v", err)
				}
				return
			case <-time.After(time.Millisecond):
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	views := 0
	for ; time.Now().Before(deadline) && views < 40 && !t.Failed(); views++ {
		var seen []int
		add := func(id string) {
			k, err := strconv.Atoi(strings.TrimPrefix(id, s.id("r")))
			if err != nil {
				t.Errorf("unexpected record %q", id)
			}
			seen = append(seen, k)
		}
		err := s.h.Store.View(ctx, u.ID, func(tx export.Tx) error {
			for a, err := range tx.Agents(ctx) {
				if err != nil {
					return err
				}
				add(a.ID)
			}
			pause()
			for x, err := range tx.ScheduledTasks(ctx) {
				if err != nil {
					return err
				}
				add(x.ID)
			}
			pause()
			for x, err := range tx.Workflows(ctx) {
				if err != nil {
					return err
				}
				add(x.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("view %d: %v", views, err)
		}
		slices.Sort(seen)
		for i, k := range seen {
			if k != i {
				t.Fatalf("view %d is not one point in time: it holds record %d but not record %d (records seen: %d)", views, k, i, len(seen))
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if views < 3 {
		t.Fatalf("only %d views completed", views)
	}
}

// exportWithNotes exports userID with the notes section added, through
// store, and returns the document's notes and the exporter's count.
func (s *suite) exportWithNotes(t *testing.T, store export.Store, userID string) ([]map[string]any, int, error) {
	t.Helper()
	exp := export.NewExporter(store)
	must(t, exp.AddSection(s.h.Notes.Section))
	var b strings.Builder
	res, err := exp.Export(ctxFor(t), &b, export.Request{UserID: userID, ExportedAt: base})
	if err != nil {
		return nil, 0, err
	}
	var doc struct {
		Workflows json.RawMessage  `json:"workflows"`
		Notes     []map[string]any `json:"notes"`
	}
	must(t, json.Unmarshal([]byte(b.String()), &doc))
	if !strings.Contains(b.String(), "\n  ],\n  \"notes\": [") && !strings.Contains(b.String(), "[],\n  \"notes\": [") {
		t.Errorf("the notes section does not follow workflows:\n%s", b.String())
	}
	if _, err := export.Decode(strings.NewReader(b.String())); err != nil {
		t.Errorf("the document with an added section does not decode: %v", err)
	}
	return doc.Notes, res.Sections["notes"], nil
}

// testAddedSection: the section holds the user's notes only (a look-alike
// ID's are not theirs), ordered by id, with the exporter's count.
func testAddedSection(t *testing.T, s *suite) {
	if s.h.Notes == nil {
		t.Skip("the harness has no added section (Harness.Notes)")
	}
	ctx := ctxFor(t)
	a, b := s.newUser(t, "alice"), s.newUser(t, "Alice")
	for _, n := range []struct{ user, id, body string }{
		{a.ID, s.id("n2"), "second"}, {a.ID, s.id("n1"), "first \"quoted\"\n🎉"}, {b.ID, s.id("n3"), "NOT ALICE'S"},
	} {
		must(t, s.h.Notes.Put(ctx, n.user, n.id, n.body))
	}
	notes, count, err := s.exportWithNotes(t, s.h.Store, a.ID)
	must(t, err)
	want := []map[string]any{{"id": s.id("n1"), "body": "first \"quoted\"\n🎉"}, {"id": s.id("n2"), "body": "second"}}
	if !slices.EqualFunc(notes, want, func(x, y map[string]any) bool { return x["id"] == y["id"] && x["body"] == y["body"] && len(x) == 2 }) {
		t.Errorf("notes = %v, want %v", notes, want)
	}
	if count != 2 {
		t.Errorf("Result.Sections[notes] = %d, want 2", count)
	}
	empty := s.newUser(t, "nobody")
	notes, count, err = s.exportWithNotes(t, s.h.Store, empty.ID)
	must(t, err)
	if notes == nil || len(notes) != 0 || count != 0 {
		t.Errorf("a user without notes: %v (%d), want an empty section", notes, count)
	}
}

// testAddedSectionSameView: a note written after the view began (here,
// while the workflows are read) is not in the export: the added section
// reads the same snapshot as the built-in ones.
func testAddedSectionSameView(t *testing.T, s *suite) {
	if s.h.Notes == nil {
		t.Skip("the harness has no added section (Harness.Notes)")
	}
	ctx := ctxFor(t)
	u := s.newUser(t, "carol")
	must(t, s.h.Notes.Put(ctx, u.ID, s.id("before"), "written before the export"))
	late := &lateWriter{Store: s.h.Store, write: func() error { return s.h.Notes.Put(ctx, u.ID, s.id("during"), "written during the export") }}
	notes, _, err := s.exportWithNotes(t, late, u.ID)
	must(t, err)
	if !late.wrote {
		t.Fatal("the late write did not run")
	}
	if len(notes) != 1 || notes[0]["id"] != s.id("before") {
		t.Errorf("notes = %v, want only the one written before the export began", notes)
	}
}

// testOwnedSections: every record of an owned section, exported for a
// user, is that user's, and none of theirs is missing.
func testOwnedSections(t *testing.T, s *suite) {
	if len(s.h.Owned) == 0 {
		t.Skip("the harness has no owned sections (Harness.Owned)")
	}
	ctx := ctxFor(t)
	users := []export.User{s.newUser(t, "olivia"), s.newUser(t, "Olivia"), s.newUser(t, "olivia "), s.newUser(t, "oliviax")}
	for _, o := range s.h.Owned {
		t.Run(o.Section.Name, func(t *testing.T) {
			want := map[string]int{}
			for i, u := range users {
				for k := range 3 - i%3 { // 3, 2, 1, 3 records: no two alike
					must(t, o.Put(ctx, u.ID, s.id(fmt.Sprintf("%s-%d-%d", o.Section.Name, i, k))))
					want[u.ID]++
				}
			}
			for _, u := range users {
				exp := export.NewExporter(s.h.Store)
				must(t, exp.AddSection(o.Section))
				var b strings.Builder
				res, err := exp.Export(ctx, &b, export.Request{UserID: u.ID, ExportedAt: base})
				must(t, err)
				var doc map[string]json.RawMessage
				must(t, json.Unmarshal([]byte(b.String()), &doc))
				var recs []map[string]any
				must(t, json.Unmarshal(doc[o.Section.Name], &recs))
				for i, r := range recs {
					owner, ok := r[o.Owner]
					if !ok {
						t.Fatalf("%s[%d] of user %q has no field %q (OwnedSection.Owner): %v", o.Section.Name, i, u.ID, o.Owner, r)
					}
					if owner != u.ID {
						t.Errorf("%s[%d] in user %q's export belongs to %v: %v", o.Section.Name, i, u.ID, owner, r)
					}
				}
				if len(recs) != want[u.ID] || res.Sections[o.Section.Name] != want[u.ID] {
					t.Errorf("user %q's export holds %d records of %s (counted %d), want the %d stored", u.ID, len(recs), o.Section.Name, res.Sections[o.Section.Name], want[u.ID])
				}
			}
		})
	}
}

// lateWriter runs write when the view's workflows are read.
type lateWriter struct {
	export.Store
	write func() error
	wrote bool
}

func (l *lateWriter) View(ctx context.Context, userID string, fn func(export.Tx) error) error {
	return l.Store.View(ctx, userID, func(tx export.Tx) error { return fn(lateTx{tx, l}) })
}

type lateTx struct {
	export.Tx
	l *lateWriter
}

// Unwrap lets the store's section reader find its own Tx (export.AsTx).
func (t lateTx) Unwrap() export.Tx { return t.Tx }

func (t lateTx) Workflows(ctx context.Context) iter.Seq2[export.Workflow, error] {
	if !t.l.wrote {
		t.l.wrote = true
		if err := t.l.write(); err != nil {
			return func(yield func(export.Workflow, error) bool) { yield(export.Workflow{}, err) }
		}
	}
	return t.Tx.Workflows(ctx)
}

// largeSection is how many records per section testLargeSections writes:
// more than a store reads before changing how it reads (sqlstore's
// packed rows switch after 1,024).
const largeSection = 1500

// testLargeSections reads sections of largeSection records while, midway
// through each, another writer adds a record of the user's that sorts
// first, changes nothing else, and adds a record of another user's: the
// view must hold exactly the records committed before it began, in
// order, whatever the store does in the middle of a large section.
func testLargeSections(t *testing.T, s *suite) {
	ctx := ctxFor(t)
	u, other := s.newUser(t, "large"), s.newUser(t, "large2")
	id := func(k int) string { return fmt.Sprintf("%s%05d", s.id("r"), k) }
	at := func(k int) time.Time { return base.Add(time.Duration(k) * time.Second) }
	for k := range largeSection {
		must(t, s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: id(k), Name: "agent", Model: "m", Status: "s", CreatedAt: at(k), UpdatedAt: at(k + 1)}))
		must(t, s.h.Fixture.PutScheduledTask(ctx, u.ID, export.ScheduledTask{ID: id(k), Name: "task", CronSchedule: "* * * * *", Enabled: k%2 == 0, CreatedAt: at(k)}))
		must(t, s.h.Fixture.PutWorkflow(ctx, u.ID, export.Workflow{ID: id(k), Name: "flow", Enabled: k%3 == 0, CreatedAt: at(k)}))
	}
	midway := largeSection * 4 / 5
	writes := 0
	write := func(section string) error {
		writes++
		early := base.Add(-time.Hour)
		late := id(largeSection + writes)
		var err error
		switch section {
		case "agents":
			err = errors.Join(s.h.Fixture.PutAgent(ctx, u.ID, export.Agent{ID: late, CreatedAt: early, UpdatedAt: early}),
				s.h.Fixture.PutAgent(ctx, other.ID, export.Agent{ID: late + "x", CreatedAt: early, UpdatedAt: early}))
		case "tasks":
			err = errors.Join(s.h.Fixture.PutScheduledTask(ctx, u.ID, export.ScheduledTask{ID: late, CreatedAt: early}),
				s.h.Fixture.PutScheduledTask(ctx, other.ID, export.ScheduledTask{ID: late + "x", CreatedAt: early}))
		default:
			err = errors.Join(s.h.Fixture.PutWorkflow(ctx, u.ID, export.Workflow{ID: late, CreatedAt: early}),
				s.h.Fixture.PutWorkflow(ctx, other.ID, export.Workflow{ID: late + "x", CreatedAt: early}))
		}
		return err
	}
	var agents, tasks, workflows []string
	err := s.h.Store.View(ctx, u.ID, func(tx export.Tx) error {
		for a, err := range tx.Agents(ctx) {
			if err != nil {
				return err
			}
			if agents = append(agents, a.ID); len(agents) == midway {
				if err := write("agents"); err != nil {
					return err
				}
			}
			if a.Name != "agent" || a.Model != "m" || a.Status != "s" || !a.UpdatedAt.Equal(at(len(agents)).Truncate(s.h.Precision)) {
				return fmt.Errorf("agent %d read as %+v", len(agents)-1, a)
			}
		}
		for x, err := range tx.ScheduledTasks(ctx) {
			if err != nil {
				return err
			}
			if tasks = append(tasks, x.ID); len(tasks) == midway {
				if err := write("tasks"); err != nil {
					return err
				}
			}
			if x.Enabled != ((len(tasks)-1)%2 == 0) || x.CronSchedule != "* * * * *" {
				return fmt.Errorf("scheduled task %d read as %+v", len(tasks)-1, x)
			}
		}
		for w, err := range tx.Workflows(ctx) {
			if err != nil {
				return err
			}
			if workflows = append(workflows, w.ID); len(workflows) == midway {
				if err := write("workflows"); err != nil {
					return err
				}
			}
			if w.Enabled != ((len(workflows)-1)%3 == 0) {
				return fmt.Errorf("workflow %d read as %+v", len(workflows)-1, w)
			}
		}
		return nil
	})
	must(t, err)
	if writes != 3 {
		t.Fatalf("%d writes ran midway, want 3", writes)
	}
	for name, got := range map[string][]string{"agents": agents, "scheduled tasks": tasks, "workflows": workflows} {
		if len(got) != largeSection {
			t.Errorf("%s: read %d records, want the %d committed before the view", name, len(got), largeSection)
			continue
		}
		for k, g := range got {
			if g != id(k) {
				t.Errorf("%s[%d] = %q, want %q", name, k, g, id(k))
				break
			}
		}
	}
}
