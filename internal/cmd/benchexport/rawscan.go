package main

import (
	"context"
	"database/sql"

	"github.com/agentbot/export/sqlstore"
)

// queries are an export's four reads in a dialect, as plain as they
// come: the application's columns with the driver's default handling (so
// modernc.org/sqlite turns DATETIME text into time.Time), the same owner
// filter and order as the library's (on PostgreSQL the ID in byte order,
// whatever the database's collation), and no transaction.
type queries struct {
	user     string
	sections [3]string
}

func queriesFor(d sqlstore.Dialect) queries {
	if d == sqlstore.Postgres {
		return queries{
			user: `SELECT id, email, name, plan, role, "referralCode", "referralCredits" FROM "User" WHERE id = $1`,
			sections: [3]string{
				`SELECT id, name, model, status, "createdAt", "updatedAt" FROM "Agent" WHERE "userId" = $1 ORDER BY "createdAt", id COLLATE "C"`,
				`SELECT id, name, "cronSchedule", enabled, "createdAt" FROM "ScheduledTask" WHERE "userId" = $1 ORDER BY "createdAt", id COLLATE "C"`,
				`SELECT id, name, enabled, "createdAt" FROM "Workflow" WHERE "userId" = $1 ORDER BY "createdAt", id COLLATE "C"`,
			},
		}
	}
	order := "ORDER BY `createdAt`, `id`"
	if d == sqlstore.MySQL {
		order = "ORDER BY `createdAt`, CAST(`id` AS BINARY)" // as the library orders
	}
	return queries{
		user: "SELECT `id`, `email`, `name`, `plan`, `role`, `referralCode`, `referralCredits` FROM `User` WHERE `id` = ?",
		sections: [3]string{
			"SELECT `id`, `name`, `model`, `status`, `createdAt`, `updatedAt` FROM `Agent` WHERE `userId` = ? " + order,
			"SELECT `id`, `name`, `cronSchedule`, `enabled`, `createdAt` FROM `ScheduledTask` WHERE `userId` = ? " + order,
			"SELECT `id`, `name`, `enabled`, `createdAt` FROM `Workflow` WHERE `userId` = ? " + order,
		},
	}
}

// rawScan runs the three queries and scans every row into sql.RawBytes:
// the floor of reading the data through database/sql, with no JSON at
// all. It returns the number of rows read.
func rawScan(ctx context.Context, db *sql.DB, d sqlstore.Dialect, userID string) (int, error) {
	n := 0
	for _, q := range queriesFor(d).sections {
		rows, err := db.QueryContext(ctx, q, userID)
		if err != nil {
			return n, err
		}
		cols, err := rows.Columns()
		if err != nil {
			rows.Close()
			return n, err
		}
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return n, err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return n, err
		}
		if err := rows.Close(); err != nil {
			return n, err
		}
	}
	return n, nil
}
