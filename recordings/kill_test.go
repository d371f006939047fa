package recordings_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/recordings"
)

// The kill -9 helper: the test binary re-executed with envChild set writes
// records until it is killed, printing each acknowledged id.
const (
	envChild       = "TOOLGATE_RECORDINGS_KILL_CHILD"
	envChildDriver = "TOOLGATE_RECORDINGS_KILL_DRIVER"
	envChildTarget = "TOOLGATE_RECORDINGS_KILL_TARGET"
)

func childMain() {
	cfg := db.Config{Driver: os.Getenv(envChildDriver)}
	if cfg.Driver == "postgres" {
		cfg.DSN = os.Getenv(envChildTarget)
	} else {
		cfg.Path = os.Getenv(envChildTarget)
	}
	d, err := db.Open(context.Background(), cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := recordings.NewStore(d, recordings.Config{Instance: "child"}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := event(i)
				ev.ID = fmt.Sprintf("kill-%d-%d", w, i)
				if err := s.Record(context.Background(), ev); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				// Printed only after the acknowledgement, and flushed at
				// once: what the parent reads was acknowledged.
				mu.Lock()
				out.WriteString(ev.ID + "\n")
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestKill9SQLite(t *testing.T) {
	_, cfg := openSQLite(t)
	kill9(t, cfg, cfg.Path)
}

func TestKill9Postgres(t *testing.T) {
	_, cfg := openPostgres(t)
	kill9(t, cfg, cfg.DSN)
}

func kill9(t *testing.T, cfg db.Config, target string) {
	if testing.Short() {
		t.Skip("kill -9 test in -short mode")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envChildDriver+"="+cfg.Driver, envChildTarget+"="+target)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var acked []string
	killed := false
	timeout := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timeout.Stop()
	for sc.Scan() {
		acked = append(acked, sc.Text())
		if len(acked) == 2000 && !killed {
			// Mid-stream: writers are still committing.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child stopped before it was killed (%v): %s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", cmd.ProcessState)
	}

	d := mustOpen(t, cfg)
	for _, id := range acked {
		if n := count(t, d, "WHERE id = ?", id); n != 1 {
			t.Fatalf("acknowledged record %s is stored %d times after kill -9, want 1", id, n)
		}
	}
	total := count(t, d, "")
	t.Logf("%d acknowledged before kill -9, %d stored", len(acked), total)
	s := newStore(t, d, recordings.Config{Instance: "verifier"})
	mustVerify(t, s, total)
	// The killed instance's chain continues when it comes back.
	s2 := newStore(t, d, recordings.Config{Instance: "child"})
	record(t, s2, event(99999))
	mustVerify(t, s2, total+1)
}
