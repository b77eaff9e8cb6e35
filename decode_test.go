package export_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/agentbot/export"
)

func readGolden(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/golden/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecodeRejects breaks the contract's example in one way at a time and
// checks that Decode names the place and the problem.
func TestDecodeRejects(t *testing.T) {
	good := readGolden(t, "contract-example")
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test bug: %q not in the example", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := []struct {
		name, doc, path, msg string
	}{
		{"empty", "", "", "empty input"},
		{"not an object", "[]", "", "want an object, got an array"},
		{"truncated", good[:len(good)/2], "*", "the file is truncated"},
		{"trailing data", good + "{}", "", "unexpected data after the document"},
		{"syntax", replace(`"version": "1.0",`, `"version": "1.0",,`), "", "not valid JSON"},
		{"wrong version", replace(`"1.0"`, `"2.0"`), "version", `unsupported version "2.0"`},
		{"version as number", replace(`"1.0"`, `1.0`), "version", "want a string, got a number"},
		{"missing key", replace(`"version": "1.0",`, ``), "", `missing required key "version"`},
		{"missing section", replace(`"scheduledTasks"`, `"tasks"`), "", `missing required key "scheduledTasks"`},
		{"duplicate key", replace(`"version": "1.0",`, `"version": "1.0", "version": "1.0",`), "version", "duplicate key"},
		{"bad exportedAt", replace(`"2026-04-02T12:00:00.000Z"`, `"2026-04-02T12:00:00Z"`), "exportedAt", "not a timestamp"},
		{"null email", replace(`"user@example.com"`, `null`), "user.email", "want a string, got null"},
		{"number name", replace(`"Jane Doe"`, `7`), "user.name", "want a string or null, got a number"},
		{"fractional credits", replace(`"referralCredits": 0`, `"referralCredits": 0.5`), "user.referralCredits", "want an integer"},
		{"string credits", replace(`"referralCredits": 0`, `"referralCredits": "0"`), "user.referralCredits", "want an integer, got a string"},
		{"leaked field in user", replace(`"referralCredits": 0`, `"referralCredits": 0, "passwordHash": "x"`), "user.passwordHash", "unexpected key"},
		{"leaked field in agent", replace(`"model": "gpt-4o",`, `"model": "gpt-4o", "config": {"apiKey": "sk"},`), "agents[0].config", "unexpected key"},
		{"agent missing field", replace(`"status": "running",`, ``), "agents[0]", `missing required key "status"`},
		{"agent timestamp", replace(`"2026-04-01T00:00:00.000Z"`, `"2026-04-01T00:00:00.000+01:00"`), "agents[0].updatedAt", "not a timestamp"},
		{"enabled as string", replace(`"enabled": true,`+"\n      \"createdAt\": \"2026-03-15", `"enabled": "true",`+"\n      \"createdAt\": \"2026-03-15"), "scheduledTasks[0].enabled", "want a boolean, got a string"},
		{"section not array", replace(`"workflows": [`, `"workflows": {"x": [`) + "}", "workflows", "want an array, got an object"},
		{"record not object", replace(`"workflows": [`, `"workflows": [3,`), "workflows[0]", "want an object, got a number"},
		{"extra section not array", replace(`"version": "1.0",`, `"version": "1.0", "notes": 3,`), "notes", "want an array"},
		{"extra section item", replace(`"version": "1.0",`, `"version": "1.0", "notes": [1],`), "notes[0]", "want an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := export.Decode(strings.NewReader(c.doc))
			var de *export.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want a *DecodeError", err)
			}
			if (c.path != "*" && de.Path != c.path) || !strings.Contains(de.Msg, c.msg) {
				t.Fatalf("Decode error = %v (path %q), want path %q and a message containing %q", err, de.Path, c.path, c.msg)
			}
		})
	}
}

func TestDecodeOrder(t *testing.T) {
	doc := goldenCases(t)["many-records"]
	doc.Agents[3], doc.Agents[4] = doc.Agents[4], doc.Agents[3]
	_, err := export.Decode(bytes.NewReader(doc.Bytes()))
	var de *export.DecodeError
	if !errors.As(err, &de) || de.Path != "agents[4].createdAt" {
		t.Fatalf("Decode of a misordered section = %v", err)
	}
}

func TestDecodeAcceptsExtraSections(t *testing.T) {
	good := readGolden(t, "contract-example")
	withExtra := strings.Replace(good, "\n}", `,
  "notifications": [{"id": "n1", "text": "hello", "nested": {"a": [1, 2]}}],
  "memories": []
}`, 1)
	doc, err := export.Decode(strings.NewReader(withExtra))
	if err != nil {
		t.Fatal(err)
	}
	if doc.User.ID != "user_abc123" || len(doc.Workflows) != 1 {
		t.Fatalf("decoded %+v", doc)
	}
}
