package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, cleanupBinary) }

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// toolgateBinary builds the real binary once per test run.
func toolgateBinary(t testing.TB) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "toolgate-e2e-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "toolgate")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func cleanupBinary() {
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
}

// server is a real toolgate process serving over loopback.
type tgProcess struct {
	URL    string
	Dir    string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startBinary runs `toolgate args...` with env and waits for the
// "toolgate listening" log line, returning the server's base URL.
func startBinary(t *testing.T, dir string, env []string, args ...string) *tgProcess {
	t.Helper()
	cmd := exec.Command(toolgateBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	s := &tgProcess{Dir: dir, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = s.stderr.Write([]byte(line + "\n"))
			if strings.Contains(line, "toolgate listening") {
				var rec struct {
					Addr string `json:"addr"`
				}
				// JSON logs (serve) carry the fields on the line; console logs
				// (dev) end with a JSON object of them.
				js := line
				if i := strings.Index(line, "{"); i > 0 && !strings.HasPrefix(line, "{") {
					js = line[i:]
				}
				if json.Unmarshal([]byte(js), &rec) == nil && rec.Addr != "" {
					addr <- rec.Addr
				}
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		t.Fatalf("toolgate exited before listening:\n%s", s.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("toolgate did not start:\n%s", s.stderr.String())
	}
	return s
}

func (s *tgProcess) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("toolgate did not stop on SIGTERM")
	}
}

// e2eEnv is the standard end-to-end fixture: a seeded Postgres target, an
// HTTP target, and toolgate serving testdata/e2e.
type e2eEnv struct {
	*tgProcess
	BotKey, OtherKey string
	APISecret        string
	CRMDSN           string
	api              *apiTarget
	// dir holds toolgate.yaml and tools; env is what the binary needs to
	// load it (the config's ${ENV} values), for other verbs on it too.
	dir string
	env []string
}

func newE2E(t *testing.T) *e2eEnv { t.Helper(); return newE2EWith(t, "") }

// newE2EWith is newE2E serving config instead of testdata/e2e/toolgate.yaml
// when config is not empty, with extra environment variables.
func newE2EWith(t *testing.T, config string, extraEnv ...string) *e2eEnv {
	t.Helper()
	var edit func(string) string
	if config != "" {
		edit = func(string) string { return config }
	}
	e := prepareE2E(t, edit)
	e.env = append(e.env, extraEnv...)
	e.tgProcess = e.start(t)
	return e
}

// start runs `toolgate serve` on the fixture's config.
func (e *e2eEnv) start(t *testing.T) *tgProcess {
	t.Helper()
	return startBinary(t, e.dir, e.env, "serve", "--config", "toolgate.yaml")
}

// prepareE2E builds the fixture without starting toolgate; edit, if set,
// rewrites testdata/e2e/toolgate.yaml first.
func prepareE2E(t *testing.T, edit func(yaml string) string) *e2eEnv {
	t.Helper()
	pg := testenv.Postgres(t)
	dsn := pg.CreateDB(t)
	seed, err := os.ReadFile("testdata/e2e/seed.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(seed)); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	dir := t.TempDir()
	copyTree(t, "testdata/e2e", dir)
	bot, botSum, _ := auth.NewAPIKey()
	other, otherSum, _ := auth.NewAPIKey()
	api := newAPITarget(t)
	e := &e2eEnv{BotKey: bot, OtherKey: other, APISecret: "api-secret-" + bot[4:12], CRMDSN: dsn, api: api, dir: dir}
	e.env = []string{
		"E2E_BOT_SHA256=" + botSum, "E2E_OTHER_SHA256=" + otherSum,
		"E2E_CRM_DSN=" + dsn, "E2E_API_URL=" + api.URL, "E2E_API_SECRET=" + e.APISecret,
	}
	if edit != nil {
		path := filepath.Join(dir, "toolgate.yaml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// apiTarget is the HTTP target: /fail answers 500, /text/{w} plain text.
type apiTarget struct {
	URL  string
	mu   sync.Mutex
	hits int
	auth []string
}

func newAPITarget(t *testing.T) *apiTarget {
	a := &apiTarget{}
	mux := http.NewServeMux()
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		a.hit(r)
		http.Error(w, "boom: internal detail 4242424242424242", http.StatusInternalServerError)
	})
	mux.HandleFunc("/text/{w}", func(w http.ResponseWriter, r *http.Request) {
		a.hit(r)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "you said %s; card 4242424242424242", r.PathValue("w"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *apiTarget) hit(r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hits++
	a.auth = append(a.auth, r.Header.Get("Authorization"))
}

// callHTTP posts args to /v1/tools/{tool}:call and decodes the JSON answer.
func (s *tgProcess) callHTTP(t *testing.T, key, node, tool, body string, extra ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/tools/"+tool+":call", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("X-Toolgate-Graph", "support-bot")
	if node != "" {
		req.Header.Set("X-Toolgate-Node", node)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, b)
	}
	out["_raw"] = string(b)
	out["_www"] = resp.Header.Get("WWW-Authenticate")
	return resp.StatusCode, out
}

// errCode returns the code of a JSON error body ({"error":{"code":...}}), or "".
func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}
