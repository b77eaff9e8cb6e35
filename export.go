package export

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// Version is the format version written into every document. Adding
// sections keeps it; removing or changing a field would not.
const Version = "1.0"

// NullString is a string that may be absent, written as JSON null. It is a
// value (not a *string) so that copies handed out by a store never alias
// the store's own data.
type NullString struct {
	String string
	Valid  bool // Valid is false for NULL
}

// Some returns a present NullString holding s.
func Some(s string) NullString { return NullString{String: s, Valid: true} }

// MarshalJSON writes the string, or null when it is not Valid.
func (n NullString) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return appendString(nil, n.String), nil
}

// UnmarshalJSON reads a string or null.
func (n *NullString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = NullString{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*n = Some(s)
	return nil
}

// User is the account the export belongs to.
type User struct {
	ID              string
	Email           string
	Name            NullString
	Plan            NullString
	Role            string
	ReferralCode    NullString
	ReferralCredits int64
}

// Agent is one of the user's agents.
type Agent struct {
	ID        string
	Name      string
	Model     string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ScheduledTask is one of the user's scheduled tasks.
type ScheduledTask struct {
	ID           string
	Name         string
	CronSchedule string
	Enabled      bool
	CreatedAt    time.Time
}

// Workflow is one of the user's workflows.
type Workflow struct {
	ID        string
	Name      string
	Enabled   bool
	CreatedAt time.Time
}

// Request says whose data to export and the instant to stamp it with.
// It is a struct so that it can grow without breaking Exporter.
type Request struct {
	UserID     string
	ExportedAt time.Time
}

// Result describes a finished (or failed) export, for audit and headers.
type Result struct {
	Bytes          int64 // bytes written to the writer
	Agents         int   // records written per section
	ScheduledTasks int
	Workflows      int
	Sections       map[string]int // records written per added section, by name; nil when none
}

// Exporter writes one user's export document to w.
//
// On success the full document has been written. On error, w may hold a
// prefix of the document that must not be passed off as complete; the
// error is an *Error naming the failed stage, or wraps ErrUserNotFound
// when the user does not exist.
type Exporter interface {
	Export(ctx context.Context, w io.Writer, req Request) (Result, error)
}

// Stage names the step of an export that failed. Its text is safe to show
// to a client: it never holds data, SQL or system error text.
type Stage string

// The stages an export can fail in.
const (
	StageSession        Stage = "resolve session"
	StageLimit          Stage = "acquire export slot"
	StageOpen           Stage = "open data view"
	StageUser           Stage = "read user"
	StageAgents         Stage = "read agents"
	StageScheduledTasks Stage = "read scheduled tasks"
	StageWorkflows      Stage = "read workflows"
	StageClose          Stage = "close data view"
	StageWrite          Stage = "write document"
	StageSpool          Stage = "spool document"
	StageCompress       Stage = "compress document"
	StagePanic          Stage = "complete export"
)

// Error is a failed export. Stage is safe to show; Err is the cause, for
// logs only.
type Error struct {
	Stage Stage
	Err   error
}

func (e *Error) Error() string { return "export: could not " + string(e.Stage) + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func stageError(s Stage, err error) error {
	var e *Error
	if errors.As(err, &e) || errors.Is(err, ErrUserNotFound) {
		return err
	}
	return &Error{Stage: s, Err: err}
}
