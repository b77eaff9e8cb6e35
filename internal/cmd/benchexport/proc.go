package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A process is one measured child: the example server, the naive server
// or the raw scanner. Each measured run gets a fresh process, so that
// what one run left on the heap does not hide the next one's growth.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	logf   *os.File
	addr   string // servers: host:port
}

// startProcess runs argv, with env added to this process's environment
// and stderr (and a server's stdout) going to a log file in dir; other
// children talk through stdin and stdout. Servers get -addr, a free
// loopback port, and are waited for until they answer.
func startProcess(ctx context.Context, dir string, argv []string, server bool, env ...string) (*process, error) {
	p := &process{}
	if server {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.addr = l.Addr().String()
		l.Close()
		argv = append(argv, "-addr", p.addr)
	}
	var err error
	p.logf, err = os.CreateTemp(dir, filepath.Base(argv[0])+"-*.log")
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = p.logf
	if server {
		// A server's output is its log: it must be drained, or a full
		// pipe would stall the server on its next log line.
		p.cmd.Stdout = p.logf
	} else {
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			return nil, err
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.stdout = bufio.NewReader(out)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	if server {
		if err := p.waitServing(ctx); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *process) waitServing(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not start serving: %v\n%s", p.cmd.Path, err, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail is the end of the child's stderr, for error messages.
func (p *process) logTail() string {
	b, _ := os.ReadFile(p.logf.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.logf.Close()
	os.Remove(p.logf.Name())
}

// resetPeak starts a new peak-RSS measurement (Linux: writing 5 to
// clear_refs resets VmHWM to the current RSS) and returns the RSS now.
func (p *process) resetPeak() (int64, error) {
	pid := strconv.Itoa(p.cmd.Process.Pid)
	if err := os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0); err != nil {
		return 0, fmt.Errorf("resetting peak RSS: %w", err)
	}
	rss, _, err := p.memory()
	return rss, err
}

// memory reads the current and peak resident set size, in bytes.
func (p *process) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		name, value, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, errors.New("no VmRSS or VmHWM in /proc/PID/status")
	}
	return rss, peak, nil
}

// cpuTime is the CPU time the process has used (user and system).
func (p *process) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// client talks to the servers: no redirects followed (the login answers
// 303 with the session cookie), no compression, keep-alive.
var client = &http.Client{
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// login signs in to the example server and returns the session cookie.
func login(ctx context.Context, addr, userID string) (*http.Cookie, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/login", strings.NewReader(url.Values{"user": {userID}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("login as %s: %s and no session cookie", userID, resp.Status)
}

// fetch GETs /api/export and copies the body to w, returning the status
// and the number of bytes.
func fetch(ctx context.Context, addr string, cookie *http.Cookie, w io.Writer) (int, int64, error) {
	return fetchCoded(ctx, addr, cookie, "", w)
}

// fetchCoded is fetch with Accept-Encoding: coding (none if ""), and
// fails unless the answer is in that coding. The body is copied to w as
// sent, not decoded (client never decodes), and n counts the bytes sent.
func fetchCoded(ctx context.Context, addr string, cookie *http.Cookie, coding string, w io.Writer) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/export", nil)
	if err != nil {
		return 0, 0, err
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if coding != "" {
		req.Header.Set("Accept-Encoding", coding)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("read %d bytes of %d", n, resp.ContentLength)
	}
	if got := resp.Header.Get("Content-Encoding"); err == nil && resp.StatusCode == http.StatusOK && got != coding {
		err = fmt.Errorf("asked for %q, got Content-Encoding %q", coding, got)
	}
	return resp.StatusCode, n, err
}
