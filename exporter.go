package export

import (
	"context"
	"io"
)

// StoreExporter is the Exporter over a Store. It streams: records go from
// the store's iterators into w through one small buffer (and, for a large
// section, a few batches of records handed to a second goroutine that
// writes while the store reads), so the memory an export holds does not
// depend on the size of the account.
type StoreExporter struct {
	store    Store
	sections []Section // added by the host, in order
}

var _ Exporter = (*StoreExporter)(nil)

// NewExporter returns an Exporter that reads from store.
func NewExporter(store Store) *StoreExporter { return &StoreExporter{store: store} }

// Export writes the document for req.UserID, stamped req.ExportedAt.
func (e *StoreExporter) Export(ctx context.Context, w io.Writer, req Request) (Result, error) {
	var res Result
	j := newJSONWriter(ctx, w)
	j.pipelined = pipelined()
	j.prog = progressFrom(ctx)
	defer j.release()
	encoded := false
	err := e.store.View(ctx, req.UserID, func(tx Tx) error {
		j.prog.tick() // the view is open
		err := encode(ctx, j, tx, req.ExportedAt, &res)
		if err == nil {
			// Separate from encode, whose Tx would otherwise escape to
			// the heap for Document.WriteTo too (an allocation per call).
			err = addedSections(ctx, j, tx, e.sections, &res)
		}
		if err == nil {
			err = end(j)
		}
		encoded = err == nil
		return err
	})
	res.Bytes = j.n
	switch {
	case err == nil:
		return res, nil
	case encoded:
		// The document was written, but releasing the view failed (an
		// SQL commit): the store could not vouch for what it gave.
		return res, stageError(StageClose, err)
	default:
		return res, stageError(StageOpen, err)
	}
}
