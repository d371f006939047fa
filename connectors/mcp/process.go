package mcp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Shutdown timings of a stdio server: SIGTERM first, SIGKILL after
// termGrace, and the stderr reader is cut loose after stderrGrace.
const (
	termGrace   = 2 * time.Second
	stderrGrace = time.Second
	// maxStderrLine bounds one logged stderr line; the rest is dropped.
	maxStderrLine = 2048
)

// neutralEnv are the variables of toolgate's own environment a stdio
// server may see: enough to find programs and a home, nothing secret.
var neutralEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// NeutralEnv keeps from environ ("KEY=value" entries, as os.Environ
// returns them) only the neutral variables a stdio server needs to run
// (PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR). The
// caller passes the result as Options.BaseEnv; a stdio server never
// inherits toolgate's whole environment, which holds its secrets.
func NeutralEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		for _, n := range neutralEnv {
			if ok && k == n {
				out = append(out, kv)
			}
		}
	}
	return out
}

// process is one run of a stdio server, in its own process group.
type process struct {
	cmd        *exec.Cmd
	stdin      *os.File // our write end
	stdout     *os.File // our read end
	stderr     *os.File // our read end
	exited     chan struct{}
	stderrDone chan struct{}
}

// startProcess starts the server with pipes of its own, so reading them
// never races with Wait, and logs its stderr.
func startProcess(cfg Config, base []string, log *zap.Logger, redact func(string) string) (*process, error) {
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = childEnv(base, cfg.Env)
	cmd.Dir = cfg.Dir
	cmd.SysProcAttr = sysProcAttr()
	var ours, theirs []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(ours)
			closeAll(theirs)
			return nil, fmt.Errorf("create pipes: %w", err)
		}
		if i == 0 { // stdin: the child reads
			ours, theirs = append(ours, w), append(theirs, r)
		} else {
			ours, theirs = append(ours, r), append(theirs, w)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = theirs[0], theirs[1], theirs[2]
	err := cmd.Start()
	closeAll(theirs)
	if err != nil {
		closeAll(ours)
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // the reason, without the path repeated
		}
		return nil, fmt.Errorf("start %s: %w", cfg.Command[0], err)
	}
	p := &process{cmd: cmd, stdin: ours[0], stdout: ours[1], stderr: ours[2], exited: make(chan struct{}), stderrDone: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	go p.logStderr(log, redact)
	return p, nil
}

// childEnv is base plus env, env winning, in a stable order.
func childEnv(base []string, env map[string]string) []string {
	vars := map[string]string{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for k, v := range env {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// logStderr logs the server's stderr line by line, each line cut to
// maxStderrLine and passed through redact first.
func (p *process) logStderr(log *zap.Logger, redact func(string) string) {
	defer close(p.stderrDone)
	r := bufio.NewReaderSize(p.stderr, maxStderrLine)
	for {
		line, err := r.ReadSlice('\n')
		truncated := errors.Is(err, bufio.ErrBufferFull)
		if text := strings.TrimRight(string(line), "\r\n"); text != "" {
			if truncated {
				text += " [truncated]"
			}
			log.Info("upstream stderr", zap.String("line", redact(text)))
		}
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return
		}
	}
}

// stop ends the server and everything in its process group: stdin is
// closed and SIGTERM sent, SIGKILL follows after termGrace. It waits for
// the server to be reaped and for its stderr to be read, then closes the
// pipes. It is safe to call once the server has exited on its own.
func (p *process) stop() {
	p.stdin.Close()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(termGrace):
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
	// The group may outlive its leader; nothing of it may stay behind.
	p.signal(syscall.SIGKILL)
	select {
	case <-p.stderrDone:
	case <-time.After(stderrGrace):
		// A process that left the group still holds the pipe.
		p.stderr.Close()
		<-p.stderrDone
	}
	p.stdout.Close()
	p.stderr.Close()
}

// signal sends sig to the server's process group.
func (p *process) signal(sig syscall.Signal) {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}
