package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	_ "modernc.org/sqlite" // the demo target's seed; the connector uses the same driver

	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/examples/quickstart"
	"github.com/toolgate/toolgate/tools/schema"
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
		Long: "dev writes a self-contained instance into --data (toolgate.yaml with relative paths and no " +
			"environment variables, tools/, the seeded demo.db, the store and the generated keys) and serves it. " +
			"It rewrites toolgate.yaml and the quickstart's tool files on every start; files you add to tools/ stay. " +
			"The read-only verbs (check, tools, policy explain, audit, replay) read toolgate-data/toolgate.yaml " +
			"when the current folder has no toolgate.yaml, and a copy of the folder serves with " +
			"`toolgate serve --config <copy>/toolgate.yaml`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, keys, err := prepareDev(data)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, file, 2)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log := newLogger(cmd.ErrOrStderr(), true)
			defer func() { _ = log.Sync() }()
			return serve(cmd.Context(), cfg, os.LookupEnv, log, func(addr string, _ *app) {
				printDevBanner(cmd.OutOrStdout(), addr, file, keys)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "listen address")
	cmd.Flags().StringVar(&data, "data", "./toolgate-data", "data dir (config, tools, store, demo database, generated keys)")
	return cmd
}

// devToolSchemaRef is the $schema of the quickstart's tool files in the
// repository, and devInstanceSchemaRef the one in a dev instance's tools/,
// where tool.schema.json sits beside toolgate.yaml.
const (
	devToolSchemaRef     = `"$schema": "../../../tools/schema/tool.schema.json"`
	devInstanceSchemaRef = `"$schema": "../tool.schema.json"`
)

// prepareDev writes the dev instance into data: keys (once), toolgate.yaml
// rendered from the quickstart with the keys' hashes, the quickstart's
// tools, the tool schema and the seeded demo database. It returns the
// config file.
func prepareDev(data string) (string, devKeys, error) {
	var keys devKeys
	data, err := filepath.Abs(data)
	if err != nil {
		return "", keys, err
	}
	if err := os.MkdirAll(filepath.Join(data, "tools"), 0o700); err != nil {
		return "", keys, fmt.Errorf("create data dir: %w", err)
	}
	if keys, err = loadOrCreateDevKeys(filepath.Join(data, "dev-keys.json")); err != nil {
		return "", keys, err
	}
	if err := writeDevTools(filepath.Join(data, "tools")); err != nil {
		return "", keys, fmt.Errorf("write quickstart tools: %w", err)
	}
	if err := os.WriteFile(filepath.Join(data, "tool.schema.json"), schema.Tool, 0o644); err != nil {
		return "", keys, err
	}
	tmpl, err := fs.ReadFile(quickstart.Files, "toolgate.yaml")
	if err != nil {
		return "", keys, err
	}
	cfg := strings.NewReplacer(
		"${TOOLGATE_DEV_AGENT_KEY_SHA256}", auth.HashKey(keys.Agent),
		"${TOOLGATE_DEV_APPROVER_KEY_SHA256}", auth.HashKey(keys.Approver),
		"${TOOLGATE_DEV_MASK_KEY}", keys.MaskKey,
	).Replace(string(tmpl))
	file := filepath.Join(data, "toolgate.yaml")
	if err := os.WriteFile(file, []byte(devConfigHeader+cfg), 0o600); err != nil {
		return "", keys, err
	}
	seed, err := fs.ReadFile(quickstart.Files, "seed.sql")
	if err != nil {
		return "", keys, err
	}
	if err := seedSQLite(filepath.Join(data, "demo.db"), string(seed)); err != nil {
		return "", keys, fmt.Errorf("seed demo database: %w", err)
	}
	return file, keys, nil
}

// devConfigHeader opens the config `toolgate dev` writes.
const devConfigHeader = `# Written by toolgate dev on every start, from examples/quickstart/toolgate.yaml
# with the generated keys (dev-keys.json) filled in. Paths are relative to this
# file's folder, so a copy of the folder is a complete instance:
#   toolgate serve --config <copy>/toolgate.yaml
# Edit such a copy: this file is rewritten when toolgate dev starts again.
`

// writeDevTools writes the quickstart's tool files into dir, replacing older
// copies and leaving other files alone.
func writeDevTools(dir string) error {
	files, err := fs.Glob(quickstart.Files, "tools/*.json")
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := fs.ReadFile(quickstart.Files, f)
		if err != nil {
			return err
		}
		b = bytes.Replace(b, []byte(devToolSchemaRef), []byte(devInstanceSchemaRef), 1)
		if err := os.WriteFile(filepath.Join(dir, path.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
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

func printDevBanner(w io.Writer, addr, file string, k devKeys) {
	mcpURL := "http://" + addr + "/mcp"
	fmt.Fprintf(w, `
toolgate dev is running.

  MCP endpoint   %s
  HTTP API       http://%s/v1/tools
  web console    http://%s/console/   (sign in with the approver key: inbox, history, runs)
  agent key      %s   (graph support-bot; nodes triage, billing)
  approver key   %s   (approves refunds over 100)
  config         %s   (toolgate check, tools list, audit export, replay … read it from here)

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

`, mcpURL, addr, addr, k.Agent, k.Approver, file, addr, k.Agent, mcpURL, k.Agent, mcpURL, k.Agent)
}
