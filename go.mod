module github.com/agentbot/export

go 1.26
