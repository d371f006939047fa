package testenv

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// mcpNPM holds package.json and package-lock.json pinning the third-party
// MCP servers the tests run as upstreams.
//
//go:embed mcpnpm/package.json mcpnpm/package-lock.json
var mcpNPM embed.FS

// npmInstall is the one install of the test binary.
var npmInstall struct {
	once sync.Once
	bin  string
	err  error
}

// MCPServers installs the pinned third-party MCP servers
// (@modelcontextprotocol/server-everything and server-filesystem) once
// into the user cache, keyed by the lock file's hash, and returns their
// node_modules/.bin folder (mcp-server-everything, mcp-server-filesystem).
// It skips the test without npm and node, except in CI (CI=true), where
// they are required.
func MCPServers(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"npm", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI to test against third-party MCP servers: %v", tool, err)
			}
			t.Skipf("%s is not installed: skipping the tests against third-party MCP servers from npm (they run in CI)", tool)
		}
	}
	npmInstall.once.Do(func() { npmInstall.bin, npmInstall.err = installNPM() })
	if npmInstall.err != nil {
		t.Fatal(npmInstall.err)
	}
	return npmInstall.bin
}

func installNPM() (string, error) {
	pkg, err := mcpNPM.ReadFile("mcpnpm/package.json")
	if err != nil {
		return "", err
	}
	lock, err := mcpNPM.ReadFile("mcpnpm/package-lock.json")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(pkg, lock...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "toolgate-tests", "mcp-npm-"+hex.EncodeToString(sum[:6]))
	bin := filepath.Join(dir, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
		return bin, nil
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), pkg, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "package-lock.json"), lock, 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", tmp, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(dir); statErr != nil { // not installed by another run meanwhile
			return "", err
		}
	}
	return bin, nil
}
