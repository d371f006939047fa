package pgwire_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/connectors/pgroles"
	"github.com/toolgate/toolgate/connectors/pgwire"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/testenv"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/recordings"
	"github.com/toolgate/toolgate/tools"
)

var tpsRe = regexp.MustCompile(`tps = ([0-9.]+)`)

// pgbench runs `pgbench -n -S -c 16 -T secs` and returns its TPS.
func pgbench(t testing.TB, secs int, env []string, args ...string) float64 {
	t.Helper()
	cmd := exec.Command("pgbench", append([]string{"-n", "-S", "-c", "16", "-j", "2", "-T", strconv.Itoa(secs)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	m := tpsRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("pgbench printed no tps:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

var timingRe = regexp.MustCompile(`Time: ([0-9.]+) ms`)

// psqlFetch runs psql fetching 50,000 pgbench_accounts rows into
// /dev/null and returns the query's time as \timing reports it.
func psqlFetch(t testing.TB, env []string, args ...string) time.Duration {
	t.Helper()
	cmd := exec.Command("psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `\timing on`, "-c", "SELECT * FROM pgbench_accounts LIMIT 50000", "-o", "/dev/null"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
	m := timingRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("psql printed no timing:\n%s", out)
	}
	ms, _ := strconv.ParseFloat(string(m[1]), 64)
	return time.Duration(ms * float64(time.Millisecond))
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPgbouncer runs PgBouncer in session mode in front of the target.
func startPgbouncer(t testing.TB, pgPort int, password, dbname string) int {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil && os.Geteuid() == 0 {
		t.Log("pgbouncer is missing; installing the Debian package")
		if out, err := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq pgbouncer").CombinedOutput(); err != nil {
			t.Logf("apt-get install pgbouncer: %v\n%s", err, out)
		}
		bin, err = exec.LookPath("pgbouncer")
	}
	if err != nil {
		return 0
	}
	// Not t.TempDir: its parent is private to root, and PgBouncer runs as
	// the postgres user.
	dir, err := os.MkdirTemp("", "pgbouncer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o777)
	port := freePort(t)
	ini := fmt.Sprintf(`[databases]
bench = host=127.0.0.1 port=%d dbname=%s user=%s password=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
auth_type = trust
auth_file = %s/users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
unix_socket_dir =
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
`, pgPort, dbname, testenv.PasswordUser, password, port, dir, dir, dir)
	for name, body := range map[string]string{"pgbouncer.ini": ini, "users.txt": `"bench" ""` + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	cmd := exec.Command(bin, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for i := 0; i < 50; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
	t.Fatalf("pgbouncer did not start:\n%s\n%s", log, stderr.String())
	return 0
}

// BenchmarkPgbench is the passthrough benchmark (DESIGN §11, run once by
// make bench): pgbench -S at 16 clients direct, through PgBouncer (session
// mode) and through toolgate with the full pipeline, sessions running as
// provisioned per-grant roles, and a real SQLite audit store, plus a 50,000-row SELECT through toolgate vs direct. It
// reports x-direct and x-pgbouncer (the judged ratios), the same ratios
// with an in-memory audit recorder, and x-direct-50k-rows.
func BenchmarkPgbench(b *testing.B) {
	var t testing.TB = b
	secs := 10
	if s, err := strconv.Atoi(os.Getenv("TOOLGATE_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	ctx := context.Background()
	pg := testenv.Postgres(t)
	direct := pg.CreateDB(t)
	name := testenv.DBName(direct)
	if out, err := exec.Command("pgbench", "-i", "-s", "10", "-q", pg.PasswordDSN(name)).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	c, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, `CREATE TABLE customers AS SELECT g AS id, 'name ' || g AS name, 'note ' || g AS note FROM generate_series(1, 50000) g;
		ALTER TABLE customers OWNER TO `+testenv.PasswordUser)
	c.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// toolgate: real broker, policy, masker and SQLite recordings.
	store, err := db.Open(ctx, db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "tg.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec, err := recordings.NewStore(store, recordings.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	key, sha, _ := auth.NewAPIKey()
	authn, _ := auth.New(auth.Config{APIKeys: []auth.APIKey{{Name: "bot", SHA256: sha}}})
	cat, _ := tools.NewCatalog()
	pol, err := policy.New(policy.Config{Graphs: graphs(), Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := mask.New(mask.Config{Targets: map[string]mask.TargetConfig{"crm": {Rules: map[string]string{"customers.card_number": "last4"}}}}, nil)
	// Sessions run as provisioned per-grant roles (lock 2), as served.
	gs, err := auth.NewSQLGrantStore(store)
	if err != nil {
		t.Fatal(err)
	}
	roles, err := pgroles.New(pgroles.Config{Target: "crm", DSN: direct, Provision: true, ConnLimit: 64, Policy: accessOf(pol, "crm"), Grants: gs})
	if err != nil {
		t.Fatal(err)
	}
	defer roles.Close()
	proxy := func(recorder broker.Recorder) int {
		brk, err := broker.New(broker.Config{Live: broker.Live{Catalog: cat, Policy: pol, Masker: m, Routes: []broker.Route{{Kind: broker.KindSQL, Target: "crm"}}}, Auth: authn, Recorder: recorder})
		if err != nil {
			t.Fatal(err)
		}
		// pgbench's 16 clients share one node: above the default cap of 10.
		srv, err := pgwire.New(pgwire.Config{Listen: "127.0.0.1:0", Target: "crm", DSN: pg.PasswordDSN(name), Login: roles, MaxConnsPerGrant: 32}, brk, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		return srv.Addr().(*net.TCPAddr).Port
	}
	proxyPort := proxy(rec)
	// The same proxy with an in-memory recorder isolates the proxy's own
	// cost from the audit store's commit latency.
	memPort := proxy(&brokertest.Recorder{})
	bouncerPort := startPgbouncer(t, pg.Port(), pg.Password(), name)

	b.ResetTimer()
	tDirect := pgbench(t, secs, nil, pg.PasswordDSN(name))
	tBouncer := math.NaN()
	if bouncerPort != 0 {
		tBouncer = pgbench(t, secs, []string{"PGSSLMODE=disable"}, "-h", "127.0.0.1", "-p", strconv.Itoa(bouncerPort), "-U", "bench", "bench")
	}
	cpu0 := selfCPU()
	tProxy := pgbench(t, secs, []string{"PGPASSWORD=" + key, "PGSSLMODE=disable"}, "-h", "127.0.0.1", "-p", strconv.Itoa(proxyPort), "-U", "support-bot/triage", "x")
	cpu1 := selfCPU()
	tMem := pgbench(t, secs, []string{"PGPASSWORD=" + key, "PGSSLMODE=disable"}, "-h", "127.0.0.1", "-p", strconv.Itoa(memPort), "-U", "support-bot/triage", "x")
	cpu2 := selfCPU()
	st := rec.Stats()
	t.Logf("pgbench -S -c 16 -T %d: direct %.0f tps, pgbouncer %.0f tps, toolgate %.0f tps (SQLite audit, %.1f records per batch), toolgate %.0f tps (in-memory audit)",
		secs, tDirect, tBouncer, tProxy, float64(st.Records)/float64(max(st.Batches, 1)), tMem)
	perTx := func(cpu time.Duration, tps float64) float64 {
		return float64(cpu.Microseconds()) / (tps * float64(secs))
	}
	t.Logf("toolgate's own CPU per transaction: %.0f µs (SQLite audit), %.0f µs (in-memory audit)", perTx(cpu1-cpu0, tProxy), perTx(cpu2-cpu1, tMem))
	t.Logf("toolgate/direct = %.2f (target >= 0.70), toolgate/pgbouncer = %.2f (target >= 1.00); in-memory audit: %.2f and %.2f",
		tProxy/tDirect, tProxy/tBouncer, tMem/tDirect, tMem/tBouncer)

	// 50,000-row SELECT.
	scan := func(dsn string) time.Duration {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		best := time.Hour
		for i := 0; i < 5; i++ {
			start := time.Now()
			rows, err := conn.Query(ctx, "SELECT id, name, note FROM customers")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 50000 {
				t.Fatalf("scan: %d rows, %v", n, rows.Err())
			}
			if d := time.Since(start); d < best {
				best = d
			}
		}
		return best
	}
	dDirect := scan(pg.PasswordDSN(name))
	dProxy := scan(fmt.Sprintf("host=127.0.0.1 port=%d user=support-bot/triage password=%s sslmode=disable", proxyPort, key))
	t.Logf("50,000-row SELECT (best of 5): direct %s, toolgate %s, throughput ratio %.2f (target >= 0.85)", dDirect, dProxy, float64(dDirect)/float64(dProxy))
	// psql fetching 50,000 pgbench_accounts rows (simple query, text),
	// alternating direct and through toolgate, the query's own time as
	// psql's \timing reports it.
	var pDirect, pProxy time.Duration = time.Hour, time.Hour
	for range 3 {
		pDirect = min(pDirect, psqlFetch(t, nil, pg.PasswordDSN(name)))
		pProxy = min(pProxy, psqlFetch(t, []string{"PGPASSWORD=" + key, "PGSSLMODE=disable"}, "-h", "127.0.0.1", "-p", strconv.Itoa(proxyPort), "-U", "support-bot/triage", "x"))
	}
	t.Logf("psql, 50,000 pgbench_accounts rows (best of 3): direct %s, toolgate %s, ratio %.2f (target >= 0.85)", pDirect, pProxy, float64(pDirect)/float64(pProxy))
	b.ReportMetric(float64(pDirect)/float64(pProxy), "x-direct-psql-50k")
	b.ReportMetric(tProxy/tDirect, "x-direct")
	if !math.IsNaN(tBouncer) {
		b.ReportMetric(tProxy/tBouncer, "x-pgbouncer")
		b.ReportMetric(tMem/tBouncer, "x-pgbouncer-memaudit")
	}
	b.ReportMetric(tMem/tDirect, "x-direct-memaudit")
	b.ReportMetric(float64(dDirect)/float64(dProxy), "x-direct-50k-rows")
	b.ReportMetric(tProxy, "tps")
}
