package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/agentbot/export/internal/sqlfixture"
	"github.com/agentbot/export/sqlstore"
)

// openMySQL returns the MySQL/MariaDB dataset of shape sh and variant v:
// a database of its own (bench_v2_own_100000_…) on the server of dsn,
// whose user must be allowed to create it, with Prisma's MySQL tables,
// loaded with multi-row INSERTs from the same generator, and kept between
// runs (a marker table written last, as on PostgreSQL).
func openMySQL(ctx context.Context, dsn string, sh shape, v variant, log io.Writer) (dataset, error) {
	name := strings.ReplaceAll(fmt.Sprintf("bench_v%d_%s_%s", datasetVersion, v, sh), "-", "_")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return dataset{}, err
	}
	cfg.DBName = name
	ds := dataset{
		dialect:    sqlstore.MySQL,
		variant:    v,
		dsn:        cfg.FormatDSN(),
		schema:     name,
		shape:      sh,
		userID:     bigUserID,
		perSection: sh.big,
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return ds, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return ds, err
	}
	ds.server = "MySQL"
	if strings.Contains(version, "MariaDB") {
		ds.server = "MariaDB"
	}
	var marker string
	if err := db.QueryRowContext(ctx, "SELECT dataset FROM `"+name+"`.bench_dataset").Scan(&marker); err == nil && marker == name {
		return ds, nil
	}
	start := time.Now()
	fmt.Fprintf(log, "loading MySQL database %s...\n", name)
	if err := loadMySQL(ctx, db, name, sh, v); err != nil {
		return ds, fmt.Errorf("loading MySQL database %s: %w", name, err)
	}
	fmt.Fprintf(log, "loaded in %v\n", time.Since(start).Round(time.Millisecond))
	return ds, nil
}

func loadMySQL(ctx context.Context, db *sql.DB, name string, sh shape, v variant) error {
	prefix := "`" + name + "`."
	stmts := []string{"DROP DATABASE IF EXISTS `" + name + "`", "CREATE DATABASE `" + name + "` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"}
	stmts = append(stmts, sqlfixture.AppSchema(sqlstore.MySQL, prefix)...)
	for _, stmt := range stmts {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
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
	const batch = 500
	buf := map[string][]any{}
	flush := func(table string) error {
		n := len(buf[table]) / len(cols[table])
		if n == 0 {
			return nil
		}
		row := "(?" + strings.Repeat(", ?", len(cols[table])-1) + ")"
		q := "INSERT INTO " + prefix + "`" + table + "` (`" + strings.Join(cols[table], "`, `") + "`) VALUES " + row + strings.Repeat(", "+row, n-1)
		_, err := db.ExecContext(ctx, q, buf[table]...)
		buf[table] = buf[table][:0]
		if err != nil {
			return fmt.Errorf("INSERT INTO %s: %w", table, err)
		}
		return nil
	}
	// DATETIME(3): the times as UTC text with milliseconds, so that the
	// DSN's time zone settings play no part.
	ms := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }
	err := generate(sh, func(u *userRow) error {
		buf["User"] = append(buf["User"], u.id, u.email, u.name, u.plan, "user", u.referralCode, u.credits,
			passwordHash, secretText, ms(u.created), ms(u.created))
		if len(buf["User"]) >= batch*len(cols["User"]) {
			return flush("User")
		}
		return nil
	}, func(r *record) error {
		if len(buf["User"]) > 0 {
			if err := flush("User"); err != nil {
				return err
			}
		}
		buf["Agent"] = append(buf["Agent"], r.agentID, r.userID, r.agentName, r.model, r.status,
			r.config(), "sha256:"+secretText, secretText, ms(r.created), ms(r.updated))
		buf["ScheduledTask"] = append(buf["ScheduledTask"], r.taskID, r.userID, r.agentID, r.taskName, r.cron,
			prompt, r.taskEnabled, ms(r.created))
		buf["Workflow"] = append(buf["Workflow"], r.flowID, r.userID, r.flowName, r.definition(), "whsec_"+secretText,
			r.flowEnabled, ms(r.created))
		if len(buf["Agent"]) >= batch*len(cols["Agent"]) {
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
		idx, err := compositeIndexStatements(sqlstore.MySQL, name)
		if err != nil {
			return err
		}
		after = append(after, idx...)
	}
	for _, t := range order {
		after = append(after, "ANALYZE TABLE "+prefix+"`"+t+"`")
	}
	after = append(after,
		"CREATE TABLE "+prefix+"bench_dataset (dataset VARCHAR(191) NOT NULL)",
		"INSERT INTO "+prefix+"bench_dataset VALUES ('"+name+"')")
	for _, stmt := range after {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

// mysqlIndexes lists the indexes on the dataset's section tables other
// than the primary keys.
func mysqlIndexes(ctx context.Context, dsn, name string) ([]string, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = ? AND table_name IN ('Agent', 'ScheduledTask', 'Workflow') AND index_name <> 'PRIMARY' ORDER BY 1", name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
