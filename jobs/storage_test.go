package jobs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/agentbot/export"
	"github.com/agentbot/export/jobs"
	"github.com/agentbot/export/jobs/storagetest"
)

func TestLocalDir(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) jobs.Storage {
		s, err := jobs.NewLocalDir(filepath.Join(t.TempDir(), "files"))
		require.NoError(t, err)
		return s
	})
}

func TestLocalDirRefusesAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	_, err := jobs.NewLocalDir(dir)
	require.ErrorContains(t, err, "open to other users")
	// One it creates is private.
	created := filepath.Join(t.TempDir(), "new")
	_, err = jobs.NewLocalDir(created)
	require.NoError(t, err)
	fi, err := os.Stat(created)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestPresignedRedirectNeedsARedirector(t *testing.T) {
	e := sqliteEngine(t)
	st, err := jobs.NewLocalDir(filepath.Join(t.TempDir(), "files"))
	require.NoError(t, err)
	_, err = jobs.New(e.db, e.driver, export.NewExporter(demoStore()), jobs.WithStorage(st), jobs.WithPresignedRedirect(time.Minute))
	require.ErrorContains(t, err, "Redirector")
}
