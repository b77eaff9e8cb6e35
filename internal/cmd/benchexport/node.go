package main

import (
	"context"
	"io"
)

// nodeRoute times the original Node.js route.
type nodeRoute struct{}

func setupNode(ctx context.Context, dir string, log io.Writer) (*nodeRoute, string) {
	return nil, "not written yet"
}

func (n *nodeRoute) verify(r *runner, ds dataset) error        { return nil }
func (n *nodeRoute) run(r *runner, ds dataset) (sample, error) { return sample{}, nil }
