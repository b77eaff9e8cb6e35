package main

import (
	"context"
	"database/sql"
)

// rawQueries are the three ordered queries of an export, as plain as they
// come: the application's columns with the driver's default handling (so
// modernc.org/sqlite turns DATETIME text into time.Time), the same owner
// filter and order, and no transaction.
var rawQueries = []string{
	"SELECT `id`, `name`, `model`, `status`, `createdAt`, `updatedAt` FROM `Agent` WHERE `userId` = ? ORDER BY `createdAt`, `id`",
	"SELECT `id`, `name`, `cronSchedule`, `enabled`, `createdAt` FROM `ScheduledTask` WHERE `userId` = ? ORDER BY `createdAt`, `id`",
	"SELECT `id`, `name`, `enabled`, `createdAt` FROM `Workflow` WHERE `userId` = ? ORDER BY `createdAt`, `id`",
}

// rawScan runs the three queries and scans every row into sql.RawBytes:
// the floor of reading the data through database/sql, with no JSON at
// all. It returns the number of rows read.
func rawScan(ctx context.Context, db *sql.DB, userID string) (int, error) {
	n := 0
	for _, q := range rawQueries {
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
