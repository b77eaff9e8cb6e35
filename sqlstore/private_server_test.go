package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests that stop, freeze or restart a database server start a server of
// their own (a private data directory and a free port), never the shared
// ones named by EXPORT_TEST_POSTGRES_DSN and EXPORT_TEST_MYSQL_DSN, which
// other packages' tests use at the same moment. They need the server
// binaries (.ci/databases.sh installs them), and skip saying so without:
// .ci/run fails if they skip there.

// privateSkip is how every private-server test's skip message starts, so
// that .ci/run can tell it apart.
const privateSkip = "private database server skipped: "

// privateServer is a database server process this test owns.
type privateServer struct {
	t      *testing.T
	name   string
	dsn    string
	argv   []string
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has ended
	frozen []int         // the processes freeze stopped
	ready  func() error
	log    string
}

// serverUser returns the credentials to run a server as: the named system
// user when the test runs as root (neither server runs as root), nobody
// else's otherwise.
func serverUser(t *testing.T, name string) (*syscall.Credential, int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid()
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf(privateSkip+"running as root needs the system user %q to run the server as: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}

// privateDir makes a directory the server's user owns, removed at the end.
func privateDir(t *testing.T, prefix string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func runAs(cred *syscall.Credential, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// postgresBin finds the directory of initdb and postgres: the newest
// under /usr/lib/postgresql (Debian), or PATH.
func postgresBin(t *testing.T) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a < b
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	t.Skipf(privateSkip + "PostgreSQL server binaries (initdb, postgres) not installed; .ci/databases.sh installs them")
	return ""
}

// startPrivatePostgres initializes a cluster in a directory of its own and
// starts it on a free port of 127.0.0.1. Every PostgreSQL process of it
// is in one process group (its postmaster's), so freeze stops them all.
func startPrivatePostgres(t *testing.T) *privateServer {
	t.Helper()
	bin := postgresBin(t)
	cred, uid, gid := serverUser(t, "postgres")
	dir := privateDir(t, "export-pg-", uid, gid)
	data := filepath.Join(dir, "data")
	if out, err := runAs(cred, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	s := &privateServer{
		t: t, name: "PostgreSQL", cred: cred, log: filepath.Join(dir, "log"),
		dsn: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", port),
		argv: []string{filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=20"},
	}
	s.ready = func() error { return pingDSN("pgx", s.dsn) }
	s.start()
	return s
}

// startPrivateMariaDB initializes a data directory and starts mariadbd on
// a free port of 127.0.0.1, without grant tables (any user, no password:
// it listens on loopback only, for this test).
func startPrivateMariaDB(t *testing.T) *privateServer {
	t.Helper()
	server, err := exec.LookPath("mariadbd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mariadbd"); serr != nil {
			t.Skipf(privateSkip + "MariaDB server binaries (mariadbd, mariadb-install-db) not installed; .ci/databases.sh installs them")
		}
		server = "/usr/sbin/mariadbd"
	}
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		t.Skipf(privateSkip + "mariadb-install-db not installed; .ci/databases.sh installs it")
	}
	cred, uid, gid := serverUser(t, "mysql")
	dir := privateDir(t, "export-mariadb-", uid, gid)
	data := filepath.Join(dir, "data")
	if out, err := runAs(cred, install, "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal", "--skip-test-db"); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := freePort(t)
	s := &privateServer{
		t: t, name: "MariaDB", cred: cred, log: filepath.Join(dir, "mariadbd.log"),
		dsn: fmt.Sprintf("root@tcp(127.0.0.1:%d)/", port),
		argv: []string{server, "--no-defaults", "--datadir=" + data, "--socket=" + filepath.Join(dir, "sock"), "--port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0",
			"--innodb-buffer-pool-size=16M", "--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + filepath.Join(dir, "mariadbd.log")},
	}
	s.ready = func() error { return pingDSN("mysql", s.dsn) }
	s.start()
	return s
}

func pingDSN(driver, dsn string) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// start runs the server and waits until it answers.
func (s *privateServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Dir = os.TempDir()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("%s: %v", s.name, err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()
	s.t.Cleanup(s.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ready()
		if err == nil {
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(s.log)
			s.t.Fatalf("%s exited at start: %v\n%s", s.name, err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.log)
			s.t.Fatalf("%s did not start: %v\n%s", s.name, err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop shuts the server down (PostgreSQL's fast shutdown, SIGINT;
// mariadbd's normal one, SIGTERM) and waits for it, thawing it first.
func (s *privateServer) stop() {
	if s.cmd == nil {
		return
	}
	s.thaw()
	pgid := s.cmd.Process.Pid
	sig := syscall.SIGTERM
	if s.name == "PostgreSQL" {
		sig = syscall.SIGINT
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	// The process group's other members (PostgreSQL's backends) end with
	// the postmaster; wait for the last of them, so that the next start
	// finds the port and the data directory free.
	for syscall.Kill(-pgid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = nil
}

// restart stops the server and starts it again, on the same port and data.
func (s *privateServer) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// freeze stops every process of the server (SIGSTOP) until thaw or the
// end of the test: it accepts connections (the kernel does) and never
// answers, as a server that hangs does. PostgreSQL's backends each lead
// a process group of their own, so each child of the postmaster is
// stopped by its PID; freeze returns once every thread of every one is
// stopped (the signal is delivered asynchronously).
func (s *privateServer) freeze() {
	s.t.Helper()
	s.t.Cleanup(s.thaw)
	s.frozen = s.processes()
	for _, pid := range s.frozen {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			s.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range s.frozen {
		for !stopped(pid) {
			if time.Now().After(deadline) {
				s.t.Fatalf("%s process %d did not stop", s.name, pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// processes returns the server's process and its children, the parent
// first, so that it is stopped before it can start another.
func (s *privateServer) processes() []int {
	root := s.cmd.Process.Pid
	pids := []int{root}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, ok := procStat(pid); ok && ppid == root && state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a task's state and parent from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(b), ')') // the command may hold spaces
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}

// stopped reports whether every thread of pid is stopped (or gone).
func stopped(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return true
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		if f := strings.Fields(string(b[i+1:])); len(f) > 0 && f[0] != "T" && f[0] != "t" && f[0] != "Z" {
			return false
		}
	}
	return true
}

func (s *privateServer) thaw() {
	for _, pid := range s.frozen {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	s.frozen = nil
}
