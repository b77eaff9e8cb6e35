package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type archiveJSON struct {
	ID       string  `json:"id"`
	Status   string  `json:"status"`
	Download *string `json:"download"`
	SHA256   *string `json:"sha256"`
}

func send(t *testing.T, c *http.Client, method, u string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestDemoArchives: the page offers "Prepare my archive"; the job API
// under /api/exports prepares the signed-in user's archive, which holds
// the synchronous download's document, resumes by ranges, is hidden from
// the other user, and is still there after a restart (its jobs database
// and files are kept beside the data file).
func TestDemoArchives(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "demo.db")
	base, _, stop := runDemo(t, "-sqlite", data)
	c := newClient(t)
	if code, body, _ := signIn(t, c, base, demoUserID); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", code, body)
	}
	page := get(t, c, base+"/")
	for _, want := range []string{`id="prepare"`, "Prepare my archive", `id="archives"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("the page lacks %s", want)
		}
	}
	resp, body := send(t, c, "POST", base+"/api/exports")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/exports: %d %s", resp.StatusCode, body)
	}
	var j archiveJSON
	if err := json.Unmarshal(body, &j); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for j.Status != "ready" {
		if time.Now().After(deadline) {
			t.Fatalf("the archive is %s", j.Status)
		}
		time.Sleep(50 * time.Millisecond)
		_, body = send(t, c, "GET", base+"/api/exports/"+j.ID)
		json.Unmarshal(body, &j)
	}
	_, archive := send(t, c, "GET", base+*j.Download)
	_, direct := send(t, c, "GET", base+"/api/export")
	if !bytes.Equal(withoutExportedAt(archive), withoutExportedAt(direct)) {
		t.Fatalf("the archive is not the export's document:\n%s\n%s", archive, direct)
	}
	resp, part := send(t, c, "GET", base+*j.Download, "Range", "bytes=100-")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, archive[100:]) {
		t.Fatalf("resumed download: %d, %d bytes", resp.StatusCode, len(part))
	}
	// Another origin's page cannot start or delete an archive.
	if resp, _ := send(t, c, "POST", base+"/api/exports", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST: %d, want 403", resp.StatusCode)
	}
	sam := newClient(t)
	signIn(t, sam, base, otherUserID)
	if resp, _ := send(t, sam, "GET", base+*j.Download); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the other user's download: %d, want 404", resp.StatusCode)
	}
	if _, body := send(t, sam, "GET", base+"/api/exports"); string(body) != "[]" {
		t.Errorf("the other user's list: %s", body)
	}
	stop()

	if _, err := os.Stat(filepath.Join(dir, "demo-files", j.ID+".json")); err != nil {
		t.Fatalf("the archive's file is not beside the data: %v", err)
	}
	base, _, _ = runDemo(t, "-sqlite", data)
	c = newClient(t)
	signIn(t, c, base, demoUserID)
	_, body = send(t, c, "GET", base+"/api/exports")
	var list []archiveJSON
	if err := json.Unmarshal(body, &list); err != nil || len(list) != 1 || list[0].ID != j.ID || list[0].Status != "ready" {
		t.Fatalf("after a restart: %s", body)
	}
	resp, again := send(t, c, "GET", base+*j.Download)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(again, archive) {
		t.Fatalf("download after a restart: %d", resp.StatusCode)
	}
	if resp, _ := send(t, c, "DELETE", base+"/api/exports/"+j.ID); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}
