package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools/scaffold"
)

// scaffoldFlags are the flags of `tools scaffold`.
type scaffoldFlags struct {
	cf                 configFlag
	target, out        string
	tables, operations []string
	openAPI            string
	writes, force      bool
	timeout            time.Duration
}

func toolsScaffoldCmd() *cobra.Command {
	f := scaffoldFlags{cf: configFlag{readOnly: true}, timeout: defaultConnectTimeout}
	cmd := &cobra.Command{
		Use:   "scaffold --target T (--tables a,b | --from-openapi SPEC [--operations id1,id2]) --out DIR",
		Short: "Write first drafts of tools from a target's tables or an OpenAPI document",
		Long: "scaffold drafts tool files. With --tables it reads each table of a postgres or sqlite target " +
			"(columns, types, keys, foreign keys, comments) and writes a lookup by primary key and a filtered " +
			"list with a limit (--writes adds insert and update, marked destructiveHint); masks are suggested for " +
			"columns that look sensitive by name or by what the detectors find in a sample of 20 rows (sampled " +
			"values are never printed or written). With --from-openapi it writes one tool per operation of an " +
			"OpenAPI 3.0/3.1 document (JSON or YAML) for an http target. Existing files are kept unless --force.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runScaffold(cmd, f) },
	}
	f.cf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "target name from the config (required)")
	fl.StringSliceVar(&f.tables, "tables", nil, "tables to draft tools for (postgres: optionally schema.table)")
	fl.StringVar(&f.openAPI, "from-openapi", "", "an OpenAPI 3.0 or 3.1 document (JSON or YAML) to draft http tools from")
	fl.StringSliceVar(&f.operations, "operations", nil, "with --from-openapi: only these operationIds (default all)")
	fl.StringVar(&f.out, "out", "", "folder to write the tool files into (required; usually the config's tools_dir)")
	fl.BoolVar(&f.writes, "writes", false, "with --tables: also draft insert and update tools")
	fl.BoolVar(&f.force, "force", false, "overwrite existing files")
	fl.DurationVar(&f.timeout, "timeout", f.timeout, "how long to wait for the database")
	_ = cmd.MarkFlagRequired("target")
	_ = cmd.MarkFlagRequired("out")
	cmd.MarkFlagsMutuallyExclusive("tables", "from-openapi")
	cmd.MarkFlagsOneRequired("tables", "from-openapi")
	return cmd
}

func runScaffold(cmd *cobra.Command, f scaffoldFlags) error {
	cfg, err := loadConfig(cmd, f.cf.path(cmd), 1)
	if err != nil {
		return err
	}
	t, ok := cfg.Targets[f.target]
	if !ok {
		return fail(1, "--target: no target named %q in %s", f.target, cfg.File)
	}
	o := scaffold.Options{Target: f.target, Writes: f.writes, SchemaRef: schemaRef(f.out)}
	var drafts []scaffold.Draft
	var notes []scaffold.Note
	switch {
	case f.openAPI != "":
		if t.HTTP == nil {
			return fail(1, "--from-openapi needs an http target; %q is %s", f.target, t.Kind)
		}
		drafts, notes, err = openAPIDrafts(f.openAPI, f.operations, o)
	case t.HTTP != nil:
		return fail(1, "--tables needs a postgres or sqlite target; %q is http (use --from-openapi)", f.target)
	default:
		det, derr := newSampleDetector()
		if derr != nil {
			return derr
		}
		o.Detector = det
		drafts, notes, err = tableDrafts(cmd.Context(), cfg, f, o)
	}
	if err != nil {
		return fail(1, "%v", err)
	}
	return writeDrafts(cmd, f, drafts, notes)
}

// schemaRef is "../tool.schema.json" when the folder above out holds the
// tool schema (as a `toolgate dev` instance does), else "".
func schemaRef(out string) string {
	if exists(filepath.Join(filepath.Dir(filepath.Clean(out)), "tool.schema.json")) {
		return "../tool.schema.json"
	}
	return ""
}

func openAPIDrafts(spec string, ops []string, o scaffold.Options) ([]scaffold.Draft, []scaffold.Note, error) {
	loader := openapi3.NewLoader() // external references stay refused
	doc, err := loader.LoadFromFile(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("--from-openapi: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, nil, fmt.Errorf("--from-openapi: not a valid OpenAPI document: %v", err)
	}
	return scaffold.OpenAPIDrafts(doc, ops, o)
}

// tableDrafts introspects the tables on the live target, read-only.
func tableDrafts(ctx context.Context, cfg *config.Config, f scaffoldFlags, o scaffold.Options) ([]scaffold.Draft, []scaffold.Note, error) {
	t := cfg.Targets[f.target]
	var read func(name string) (scaffold.Table, error)
	switch {
	case t.Postgres != nil:
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		conn, err := pgx.Connect(cctx, t.Postgres.DSN)
		if err != nil {
			return nil, nil, fmt.Errorf("target %s: cannot connect: %s", f.target, connectError(err))
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(cctx, "SET default_transaction_read_only = on"); err != nil {
			return nil, nil, err
		}
		read = func(name string) (scaffold.Table, error) { return scaffold.PostgresTable(cctx, conn, name) }
	case t.SQLite != nil:
		path := t.SQLite.Path
		if !exists(path) {
			return nil, nil, fmt.Errorf("target %s: the database %s does not exist", f.target, path)
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			return nil, nil, err
		}
		defer db.Close()
		read = func(name string) (scaffold.Table, error) { return scaffold.SQLiteTable(ctx, db, name) }
	}
	var drafts []scaffold.Draft
	var notes []scaffold.Note
	for _, name := range f.tables {
		tbl, err := read(strings.TrimSpace(name))
		if err != nil {
			return nil, nil, fmt.Errorf("--tables: %w", err)
		}
		ds, ns, err := scaffold.TableDrafts(tbl, t.Kind, o)
		if err != nil {
			return nil, nil, err
		}
		drafts, notes = append(drafts, ds...), append(notes, ns...)
	}
	return drafts, notes, nil
}

// writeDrafts writes each draft into f.out, keeping existing files unless
// --force, and prints what it did and the notes.
func writeDrafts(cmd *cobra.Command, f scaffoldFlags, drafts []scaffold.Draft, notes []scaffold.Note) error {
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fail(1, "--out: %v", err)
	}
	out := cmd.OutOrStdout()
	kept := 0
	for _, d := range drafts {
		file := filepath.Join(f.out, d.File)
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if f.force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		w, err := os.OpenFile(file, flags, 0o644)
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(out, "kept  %s (it exists; --force overwrites)\n", file)
			kept++
			continue
		}
		if err != nil {
			return fail(1, "%v", err)
		}
		_, err = w.Write(d.JSON)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(1, "write %s: %v", file, err)
		}
		fmt.Fprintf(out, "wrote %s\n", file)
	}
	for _, n := range notes {
		fmt.Fprintf(out, "note: %s\n", n.Text)
	}
	fmt.Fprintf(out, "next: read the drafts, allow them in a node's policy, then run toolgate check --connect\n")
	if kept > 0 && kept == len(drafts) {
		return fail(1, "every file exists already; nothing was written (use --force to overwrite)")
	}
	return nil
}

// sampleDetector runs toolgate's detectors over sampled values.
type sampleDetector struct{ m *mask.Masker }

var _ scaffold.Detector = sampleDetector{}

func newSampleDetector() (sampleDetector, error) {
	on := map[string]bool{}
	for _, d := range mask.Detectors() {
		on[d] = true
	}
	m, err := mask.New(mask.Config{Detectors: on}, zap.NewNop())
	if err != nil {
		return sampleDetector{}, err
	}
	return sampleDetector{m: m}, nil
}

// Detect implements scaffold.Detector. The value goes only through the
// masker; the detector names in its statistics come back.
func (d sampleDetector) Detect(value string) []string {
	doc, err := jsonString(value)
	if err != nil {
		return nil
	}
	_, stats, err := d.m.MaskResult(nil, doc)
	if err != nil {
		return nil
	}
	var out []string
	for k := range stats {
		if name, ok := strings.CutPrefix(k, "detector:"); ok {
			out = append(out, name)
		}
	}
	return out
}

func jsonString(s string) ([]byte, error) { return json.Marshal(map[string]string{"v": s}) }
