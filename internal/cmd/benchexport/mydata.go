package main

import (
	"context"
	"errors"
	"io"
)

// openMySQL is not written yet.
func openMySQL(ctx context.Context, dsn string, sh shape, v variant, log io.Writer) (dataset, error) {
	return dataset{}, errors.New("-mysql is not implemented yet")
}
