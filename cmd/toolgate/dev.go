package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	_ "modernc.org/sqlite" // the demo target's seed; the connector uses the same driver

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/examples/quickstart"
	"github.com/toolgate/toolgate/internal/config"
)

// devKeys are the credentials `toolgate dev` generates once per data dir.
type devKeys struct {
	Agent    string `json:"agent_key"`
	Approver string `json:"approver_key"`
	MaskKey  string `json:"mask_key"`
}

func devCmd() *cobra.Command {
	var listen, data string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Zero-setup toolgate: embedded store, seeded demo SQLite target, demo tools and policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, keys, env, err := prepareDev(data)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log := newLogger(cmd.ErrOrStderr(), true)
			defer func() { _ = log.Sync() }()
			return serve(cmd.Context(), cfg, env, log, func(addr string, _ *app) {
				printDevBanner(cmd.OutOrStdout(), addr, keys)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen address")
	cmd.Flags().StringVar(&data, "data", "./toolgate-data", "data dir (store, demo database, generated keys)")
	return cmd
}

// prepareDev creates the data dir, the keys, the quickstart files and the
// demo database, and loads the quickstart config.
func prepareDev(data string) (*config.Config, devKeys, config.Env, error) {
	var keys devKeys
	data, err := filepath.Abs(data)
	if err != nil {
		return nil, keys, nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, keys, nil, fmt.Errorf("create data dir: %w", err)
	}
	if keys, err = loadOrCreateDevKeys(filepath.Join(data, "dev-keys.json")); err != nil {
		return nil, keys, nil, err
	}
	qs := filepath.Join(data, "quickstart")
	if err := copyFS(quickstart.Files, qs); err != nil {
		return nil, keys, nil, fmt.Errorf("write quickstart: %w", err)
	}
	seed, err := fs.ReadFile(quickstart.Files, "seed.sql")
	if err != nil {
		return nil, keys, nil, err
	}
	if err := seedSQLite(filepath.Join(data, "demo.db"), string(seed)); err != nil {
		return nil, keys, nil, fmt.Errorf("seed demo database: %w", err)
	}
	env := func(name string) (string, bool) {
		switch name {
		case "TOOLGATE_DEV_DATA":
			return data, true
		case "TOOLGATE_DEV_AGENT_KEY_SHA256":
			return auth.HashKey(keys.Agent), true
		case "TOOLGATE_DEV_APPROVER_KEY_SHA256":
			return auth.HashKey(keys.Approver), true
		case "TOOLGATE_DEV_MASK_KEY":
			return keys.MaskKey, true
		}
		return os.LookupEnv(name)
	}
	cfg, err := config.Load(filepath.Join(qs, "toolgate.yaml"), env)
	if err != nil {
		return nil, keys, nil, err
	}
	return cfg, keys, env, nil
}

func loadOrCreateDevKeys(file string) (devKeys, error) {
	var k devKeys
	if b, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(b, &k); err == nil && k.Agent != "" && k.Approver != "" && k.MaskKey != "" {
			return k, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	var err error
	if k.Agent, _, err = auth.NewAPIKey(); err != nil {
		return k, err
	}
	if k.Approver, _, err = auth.NewAPIKey(); err != nil {
		return k, err
	}
	if k.MaskKey, err = auth.NewToken("mk_"); err != nil {
		return k, err
	}
	b, _ := json.MarshalIndent(k, "", "  ")
	return k, os.WriteFile(file, b, 0o600)
}

// copyFS writes every file of fsys under dir, replacing older copies.
func copyFS(fsys fs.FS, dir string) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

func seedSQLite(file, seed string) error {
	db, err := sql.Open("sqlite", file)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	_, err = db.ExecContext(ctx, seed)
	return err
}

func printDevBanner(w io.Writer, addr string, k devKeys) {
	mcpURL := "http://" + addr + "/mcp"
	fmt.Fprintf(w, `
toolgate dev is running.

  MCP endpoint   %s
  HTTP API       http://%s/v1/tools
  agent key      %s   (graph support-bot; nodes triage, billing)
  approver key   %s   (approves refunds over 100)

Try it:
  curl -s http://%s/v1/tools -H "Authorization: Bearer %s" -H "X-Toolgate-Graph: support-bot" -H "X-Toolgate-Node: triage"

LangGraph (Python, langchain-mcp-adapters):
  client = MultiServerMCPClient({"toolgate": {
      "transport": "streamable_http", "url": "%s",
      "headers": {"Authorization": "Bearer %s",
                  "X-Toolgate-Graph": "support-bot", "X-Toolgate-Node": "triage"}}})

LangGraph.js (@langchain/mcp-adapters):
  new MultiServerMCPClient({ mcpServers: { toolgate: {
      transport: "http", url: "%s",
      headers: { Authorization: "Bearer %s",
                 "X-Toolgate-Graph": "support-bot", "X-Toolgate-Node": "triage" } } } });

`, mcpURL, addr, k.Agent, k.Approver, addr, k.Agent, mcpURL, k.Agent, mcpURL, k.Agent)
}
