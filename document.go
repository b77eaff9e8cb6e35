package export

import (
	"bytes"
	"context"
	"io"
	"iter"
	"slices"
	"time"
)

// Document is a whole export held in memory. Large accounts should be
// streamed with an Exporter instead; Document is for small accounts, tests
// and for reading files back with Decode.
type Document struct {
	ExportedAt     time.Time
	Version        string
	User           User
	Agents         []Agent
	ScheduledTasks []ScheduledTask
	Workflows      []Workflow
}

// WriteTo writes d in the format of the contract. d.Version is not
// consulted: the writer only knows how to write Version.
func (d *Document) WriteTo(w io.Writer) (int64, error) {
	j := newJSONWriter(context.Background(), w)
	defer j.release()
	var res Result
	err := encode(context.Background(), j, docTx{d}, d.ExportedAt, &res)
	if err == nil {
		err = end(j)
	}
	return j.n, err
}

// Bytes returns d in the format of the contract.
func (d *Document) Bytes() []byte {
	var buf bytes.Buffer
	d.WriteTo(&buf) // a bytes.Buffer never fails a write
	return buf.Bytes()
}

// ReadDocument reads one user's whole export into memory. It is meant for
// small accounts and tests; serve large ones with an Exporter.
func ReadDocument(ctx context.Context, store Store, userID string, exportedAt time.Time) (*Document, error) {
	d := &Document{ExportedAt: exportedAt, Version: Version}
	err := store.View(ctx, userID, func(tx Tx) error {
		u, err := tx.User(ctx)
		if err != nil {
			return stageError(StageUser, err)
		}
		d.User = u
		if d.Agents, err = collect(tx.Agents(ctx), StageAgents); err != nil {
			return err
		}
		if d.ScheduledTasks, err = collect(tx.ScheduledTasks(ctx), StageScheduledTasks); err != nil {
			return err
		}
		d.Workflows, err = collect(tx.Workflows(ctx), StageWorkflows)
		return err
	})
	if err != nil {
		return nil, stageError(StageOpen, err)
	}
	return d, nil
}

func collect[T any](seq iter.Seq2[T, error], stage Stage) ([]T, error) {
	out := []T{}
	for v, err := range seq {
		if err != nil {
			return nil, stageError(stage, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// docTx serves a Document through the Tx interface, so that a document in
// memory and a streamed export share one encoder.
type docTx struct{ d *Document }

func (t docTx) User(context.Context) (User, error) { return t.d.User, nil }
func (t docTx) Agents(context.Context) iter.Seq2[Agent, error] {
	return sliceSeq(t.d.Agents)
}
func (t docTx) ScheduledTasks(context.Context) iter.Seq2[ScheduledTask, error] {
	return sliceSeq(t.d.ScheduledTasks)
}
func (t docTx) Workflows(context.Context) iter.Seq2[Workflow, error] {
	return sliceSeq(t.d.Workflows)
}

func sliceSeq[T any](s []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, v := range slices.All(s) {
			if !yield(v, nil) {
				return
			}
		}
	}
}
