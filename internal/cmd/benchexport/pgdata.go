package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// openPostgres returns the PostgreSQL dataset of shape sh and variant v
// in the database of dsn: a schema of its own (bench_v2_own_100000-…),
// loaded with COPY from the same generator as the SQLite files, and kept
// between runs. A marker table written last holds the dataset's name, so
// an interrupted load is never mistaken for a finished one.
func openPostgres(ctx context.Context, dsn string, sh shape, v variant, log io.Writer) (dataset, error) {
	schema := strings.ReplaceAll(fmt.Sprintf("bench_v%d_%s_%s", datasetVersion, v, sh), "-", "_")
	ds := dataset{
		dialect:    sqlstore.Postgres,
		variant:    v,
		dsn:        withSearchPath(dsn, schema),
		schema:     schema,
		shape:      sh,
		userID:     bigUserID,
		perSection: sh.big,
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return ds, err
	}
	defer conn.Close(context.Background())
	var marker string
	err = conn.QueryRow(ctx, `SELECT dataset FROM `+pgx.Identifier{schema, "bench_dataset"}.Sanitize()).Scan(&marker)
	if err == nil && marker == schema {
		return ds, nil
	}
	start := time.Now()
	fmt.Fprintf(log, "loading PostgreSQL schema %s...\n", schema)
	if err := loadPostgres(ctx, conn, schema, sh, v); err != nil {
		return ds, fmt.Errorf("loading PostgreSQL schema %s: %w", schema, err)
	}
	fmt.Fprintf(log, "loaded in %v\n", time.Since(start).Round(time.Millisecond))
	return ds, nil
}

// withSearchPath adds search_path=schema to a URL or keyword/value DSN
// (pgx passes it to the server as a run-time parameter).
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

func loadPostgres(ctx context.Context, conn *pgx.Conn, schema string, sh shape, v variant) error {
	prefix := pgx.Identifier{schema}.Sanitize() + "."
	stmts := []string{"DROP SCHEMA IF EXISTS " + pgx.Identifier{schema}.Sanitize() + " CASCADE", "CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize()}
	// The application's tables and its own indexes, as its migrations
	// make them: before the data.
	stmts = append(stmts, sqlfixture.AppSchema(sqlstore.Postgres, prefix)...)
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	cols := map[string][]string{
		"User":          {"id", "email", "name", "plan", "role", "referralCode", "referralCredits", "passwordHash", "walletSeed", "createdAt", "updatedAt"},
		"Agent":         {"id", "userId", "name", "model", "status", "config", "apiKeyHash", "encryptedToken", "createdAt", "updatedAt"},
		"ScheduledTask": {"id", "userId", "agentId", "name", "cronSchedule", "prompt", "enabled", "createdAt"},
		"Workflow":      {"id", "userId", "name", "definition", "webhookSecret", "enabled", "createdAt"},
	}
	order := []string{"User", "Agent", "ScheduledTask", "Workflow"}
	buf := map[string][][]any{}
	flush := func(table string) error {
		if len(buf[table]) == 0 {
			return nil
		}
		_, err := conn.CopyFrom(ctx, pgx.Identifier{schema, table}, cols[table], pgx.CopyFromRows(buf[table]))
		buf[table] = buf[table][:0]
		if err != nil {
			return fmt.Errorf("COPY %s: %w", table, err)
		}
		return nil
	}
	ms := func(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) } // TIMESTAMP(3) would round
	usersDone := false
	const batch = 5000
	err := generate(sh, func(u *userRow) error {
		buf["User"] = append(buf["User"], []any{u.id, u.email, u.name, u.plan, "user", u.referralCode, u.credits,
			passwordHash, secretText, ms(u.created), ms(u.created)})
		return nil
	}, func(r *record) error {
		if !usersDone { // the users go first: the records refer to them
			if err := flush("User"); err != nil {
				return err
			}
			usersDone = true
		}
		buf["Agent"] = append(buf["Agent"], []any{r.agentID, r.userID, r.agentName, r.model, r.status,
			r.config(), "sha256:" + secretText, secretText, ms(r.created), ms(r.updated)})
		buf["ScheduledTask"] = append(buf["ScheduledTask"], []any{r.taskID, r.userID, r.agentID, r.taskName, r.cron,
			prompt, r.taskEnabled, ms(r.created)})
		buf["Workflow"] = append(buf["Workflow"], []any{r.flowID, r.userID, r.flowName, r.definition(), "whsec_" + secretText,
			r.flowEnabled, ms(r.created)})
		if len(buf["Agent"]) >= batch {
			for _, t := range order[1:] {
				if err := flush(t); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range order {
		if err := flush(t); err != nil {
			return err
		}
	}
	var after []string
	if v == compositeIndex {
		// Added as a host adds it to an existing database.
		idx, err := compositeIndexStatements(sqlstore.Postgres, schema)
		if err != nil {
			return err
		}
		after = append(after, idx...)
	}
	// VACUUM as autovacuum would have done on a live database (visibility
	// map, hint bits), and statistics for the planner.
	for _, t := range order {
		after = append(after, "VACUUM (ANALYZE) "+prefix+pgx.Identifier{t}.Sanitize())
	}
	after = append(after,
		"CREATE TABLE "+prefix+"bench_dataset (dataset TEXT NOT NULL)",
		"INSERT INTO "+prefix+"bench_dataset VALUES ('"+schema+"')")
	for _, stmt := range after {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

// postgresIndexes lists the indexes on the dataset's section tables other
// than the primary keys.
func postgresIndexes(ctx context.Context, dsn, schema string) ([]string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename IN ('Agent', 'ScheduledTask', 'Workflow') AND indexname NOT LIKE '%\_pkey' ORDER BY indexname COLLATE "C"`, schema)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no index at all: is the schema there?")
	}
	return names, nil
}
