package sqlfixture

import (
	"strings"

	"github.com/agentbot/export/sqlstore"
)

// AppSchema returns the DDL of the application this library replaces, as
// its ORM (Prisma) generates it for dialect d, with a selection of the
// columns the export must never read (password hashes, API keys, prompts,
// webhook secrets). prefix goes before each table name: "" or a quoted
// schema and a dot. The User table's updatedAt has no default, as
// Prisma's @updatedAt. The only index on each owner column is the
// application's @@index([userId]); the one sqlstore.Schema describes,
// which serves the export's ordered read, is the host's to add.
func AppSchema(d sqlstore.Dialect, prefix string) []string {
	stmts := make([]string, len(appSchema[d]))
	for i, s := range appSchema[d] {
		stmts[i] = strings.ReplaceAll(s, "{S}", prefix)
	}
	return stmts
}

var appSchema = map[sqlstore.Dialect][]string{
	sqlstore.Postgres: {
		`CREATE TABLE {S}"User" (
    "id" TEXT NOT NULL,
    "email" TEXT,
    "name" TEXT,
    "plan" TEXT NOT NULL DEFAULT 'free',
    "role" TEXT NOT NULL DEFAULT 'user',
    "referralCode" TEXT,
    "referralCredits" INTEGER NOT NULL DEFAULT 0,
    "passwordHash" TEXT,
    "walletSeed" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "User_pkey" PRIMARY KEY ("id"))`,
		`CREATE TABLE {S}"Agent" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "model" TEXT,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "config" JSONB,
    "apiKeyHash" TEXT,
    "encryptedToken" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Agent_pkey" PRIMARY KEY ("id"))`,
		`CREATE TABLE {S}"ScheduledTask" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "agentId" TEXT,
    "name" TEXT NOT NULL,
    "cronSchedule" TEXT NOT NULL,
    "prompt" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ScheduledTask_pkey" PRIMARY KEY ("id"))`,
		`CREATE TABLE {S}"Workflow" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "definition" JSONB,
    "webhookSecret" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Workflow_pkey" PRIMARY KEY ("id"))`,
		`CREATE UNIQUE INDEX "User_email_key" ON {S}"User"("email")`,
		// schema.prisma's @@index([userId]) on each table a user owns.
		`CREATE INDEX "Agent_userId_idx" ON {S}"Agent"("userId")`,
		`CREATE INDEX "ScheduledTask_userId_idx" ON {S}"ScheduledTask"("userId")`,
		`CREATE INDEX "Workflow_userId_idx" ON {S}"Workflow"("userId")`,
		`ALTER TABLE {S}"Agent" ADD CONSTRAINT "Agent_userId_fkey" FOREIGN KEY ("userId") REFERENCES {S}"User"("id") ON DELETE CASCADE ON UPDATE CASCADE`,
		`ALTER TABLE {S}"ScheduledTask" ADD CONSTRAINT "ScheduledTask_userId_fkey" FOREIGN KEY ("userId") REFERENCES {S}"User"("id") ON DELETE CASCADE ON UPDATE CASCADE`,
		`ALTER TABLE {S}"Workflow" ADD CONSTRAINT "Workflow_userId_fkey" FOREIGN KEY ("userId") REFERENCES {S}"User"("id") ON DELETE CASCADE ON UPDATE CASCADE`,
	},
	// Prisma's MySQL provider: VARCHAR(191) keys in the database's default
	// (case-insensitive) collation; long strings as @db.Text.
	sqlstore.MySQL: {
		"CREATE TABLE {S}`User` (`id` VARCHAR(191) NOT NULL, `email` VARCHAR(191) NULL, `name` TEXT NULL," +
			" `plan` VARCHAR(191) NOT NULL DEFAULT 'free', `role` VARCHAR(191) NOT NULL DEFAULT 'user'," +
			" `referralCode` VARCHAR(191) NULL, `referralCredits` INTEGER NOT NULL DEFAULT 0," +
			" `passwordHash` VARCHAR(191) NULL, `walletSeed` TEXT NULL," +
			" `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` DATETIME(3) NOT NULL," +
			" UNIQUE INDEX `User_email_key`(`email`), PRIMARY KEY (`id`)" +
			") DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE TABLE {S}`Agent` (`id` VARCHAR(191) NOT NULL, `userId` VARCHAR(191) NOT NULL, `name` TEXT NOT NULL," +
			" `model` VARCHAR(191) NULL, `status` VARCHAR(191) NOT NULL DEFAULT 'pending', `config` JSON NULL," +
			" `apiKeyHash` VARCHAR(191) NULL, `encryptedToken` TEXT NULL," +
			" `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` DATETIME(3) NOT NULL," +
			" INDEX `Agent_userId_idx`(`userId`), PRIMARY KEY (`id`)) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE TABLE {S}`ScheduledTask` (`id` VARCHAR(191) NOT NULL, `userId` VARCHAR(191) NOT NULL, `agentId` VARCHAR(191) NULL," +
			" `name` TEXT NOT NULL, `cronSchedule` VARCHAR(191) NOT NULL, `prompt` TEXT NULL, `enabled` BOOLEAN NOT NULL DEFAULT true," +
			" `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)," +
			" INDEX `ScheduledTask_userId_idx`(`userId`), PRIMARY KEY (`id`)) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE TABLE {S}`Workflow` (`id` VARCHAR(191) NOT NULL, `userId` VARCHAR(191) NOT NULL, `name` TEXT NOT NULL," +
			" `definition` JSON NULL, `webhookSecret` VARCHAR(191) NULL, `enabled` BOOLEAN NOT NULL DEFAULT true," +
			" `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)," +
			" INDEX `Workflow_userId_idx`(`userId`), PRIMARY KEY (`id`)) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
	},
	// Prisma's SQLite provider: DATETIME columns, which the test fills
	// with integer Unix milliseconds as Prisma does.
	sqlstore.SQLite: {
		`CREATE TABLE "User" ("id" TEXT NOT NULL PRIMARY KEY, "email" TEXT, "name" TEXT,
    "plan" TEXT NOT NULL DEFAULT 'free', "role" TEXT NOT NULL DEFAULT 'user', "referralCode" TEXT,
    "referralCredits" INTEGER NOT NULL DEFAULT 0, "passwordHash" TEXT, "walletSeed" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" DATETIME NOT NULL)`,
		`CREATE TABLE "Agent" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "name" TEXT NOT NULL,
    "model" TEXT, "status" TEXT NOT NULL DEFAULT 'pending', "config" JSONB, "apiKeyHash" TEXT, "encryptedToken" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Agent_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE)`,
		`CREATE TABLE "ScheduledTask" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "agentId" TEXT,
    "name" TEXT NOT NULL, "cronSchedule" TEXT NOT NULL, "prompt" TEXT, "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ScheduledTask_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE)`,
		`CREATE TABLE "Workflow" ("id" TEXT NOT NULL PRIMARY KEY, "userId" TEXT NOT NULL, "name" TEXT NOT NULL,
    "definition" JSONB, "webhookSecret" TEXT, "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Workflow_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE)`,
		`CREATE UNIQUE INDEX "User_email_key" ON "User"("email")`,
		`CREATE INDEX "Agent_userId_idx" ON "Agent"("userId")`,
		`CREATE INDEX "ScheduledTask_userId_idx" ON "ScheduledTask"("userId")`,
		`CREATE INDEX "Workflow_userId_idx" ON "Workflow"("userId")`,
	},
}
