package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/tools"
)

// defaultConnectTimeout bounds each target check of `check --connect`.
const defaultConnectTimeout = 5 * time.Second

// checkConnect prepares every SQL tool on its target and reaches every
// HTTP target (connect true), or only prepares SQL tools on SQLite files
// that exist (connect false: nothing but local files is opened). Nothing
// is executed: statements are prepared, never run.
func checkConnect(ctx context.Context, cfg *config.Config, cat *tools.Catalog, connect bool, timeout time.Duration) problemList {
	byTarget := map[string][]*broker.Tool{}
	for _, t := range cat.Tools() {
		byTarget[t.Target] = append(byTarget[t.Target], t)
	}
	var probs problemList
	for _, name := range slices.Sorted(maps.Keys(cfg.Targets)) {
		t := cfg.Targets[name]
		switch {
		case t.SQLite != nil:
			probs = append(probs, prepareSQLite(ctx, cfg, name, byTarget[name], connect)...)
		case !connect:
		case t.Postgres != nil:
			probs = append(probs, preparePostgres(ctx, cfg, name, byTarget[name], timeout)...)
		case t.HTTP != nil:
			if err := reachHTTP(ctx, t.HTTP.BaseURL, timeout); err != nil {
				probs = append(probs, cfg.Problem("targets."+name+".base_url", "cannot reach the target: "+err.Error()).String())
			}
		}
	}
	return probs
}

// preparePostgres prepares each tool's statement on one connection and
// checks the parameter types the server inferred against the input schema.
func preparePostgres(ctx context.Context, cfg *config.Config, target string, ts []*broker.Tool, timeout time.Duration) problemList {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(cctx, cfg.Targets[target].Postgres.DSN)
	if err != nil {
		return problemList{cfg.Problem("targets."+target, "cannot connect to the database: "+connectError(err)).String()}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var probs problemList
	for _, t := range sqlTools(ts) {
		stmt, args, _ := t.Spec.(*tools.Spec).SQL()
		pctx, cancel := context.WithTimeout(ctx, timeout)
		sd, err := conn.Prepare(pctx, "", stmt)
		cancel()
		if err != nil {
			probs = append(probs, toolProblem(t, "/sql/statement", "the database refuses the statement: "+statementError(err)))
			if conn.IsClosed() {
				return probs
			}
			continue
		}
		probs = append(probs, paramProblems(t, args, sd.ParamOIDs, conn.TypeMap())...)
	}
	return probs
}

// connectError is a connection failure without the DSN (pgx names the host
// and user, never the password).
func connectError(err error) string {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap().Error()
	}
	return err.Error()
}

// statementError is the server's reason, with its SQLSTATE and position.
func statementError(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	msg := fmt.Sprintf("%s (SQLSTATE %s", pe.Message, pe.Code)
	if pe.Position > 0 {
		msg += fmt.Sprintf(", at character %d", pe.Position)
	}
	return msg + ")"
}

// paramProblems compares each $n's inferred type with the JSON Schema
// type of the argument bound to it.
func paramProblems(t *broker.Tool, args []string, oids []uint32, tm *pgtype.Map) []string {
	types := argTypes(t.InputSchema)
	var out []string
	for i, oid := range oids {
		if i >= len(args) {
			break
		}
		want := jsonTypesFor(oid)
		have := types[args[i]]
		if want == nil || len(have) == 0 {
			continue
		}
		for _, h := range have {
			if h != "null" && !slices.Contains(want, h) {
				pgName := fmt.Sprint(oid)
				if typ, ok := tm.TypeForOID(oid); ok {
					pgName = typ.Name
				}
				out = append(out, toolProblem(t, fmt.Sprintf("/sql/args/%d", i), fmt.Sprintf(
					"$%d binds %q, which input_schema declares as %s, but the database expects %s here: declare it as %s",
					i+1, args[i], strings.Join(have, " or "), pgName, strings.Join(want, " or "))))
				break
			}
		}
	}
	return out
}

// jsonTypesFor is the JSON Schema types an argument bound to a parameter
// of type oid may have, or nil when any fits (or the type is not known).
func jsonTypesFor(oid uint32) []string {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID:
		return []string{"integer"}
	case pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID:
		return []string{"number", "integer"}
	case pgtype.BoolOID:
		return []string{"boolean"}
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UUIDOID, pgtype.DateOID,
		pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.TimeOID, pgtype.IntervalOID, pgtype.InetOID, pgtype.ByteaOID:
		return []string{"string"}
	}
	return nil
}

// argTypes reads the "type" of each top-level property of an input schema.
func argTypes(schema json.RawMessage) map[string][]string {
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(schema, &s)
	out := map[string][]string{}
	for name, p := range s.Properties {
		switch v := p.Type.(type) {
		case string:
			out[name] = []string{v}
		case []any:
			for _, x := range v {
				if str, ok := x.(string); ok {
					out[name] = append(out[name], str)
				}
			}
		}
	}
	return out
}

// prepareSQLite prepares each tool's statement on the database file,
// opened read-only. A missing file is a problem only with --connect.
func prepareSQLite(ctx context.Context, cfg *config.Config, target string, ts []*broker.Tool, connect bool) problemList {
	path := cfg.Targets[target].SQLite.Path
	if _, err := os.Stat(path); err != nil {
		if connect {
			return problemList{cfg.Problem("targets."+target+".path", "cannot open the database: "+pathReason(err)).String()}
		}
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return problemList{cfg.Problem("targets."+target+".path", "cannot open the database: "+err.Error()).String()}
	}
	defer db.Close()
	var probs problemList
	for _, t := range sqlTools(ts) {
		stmt, _, _ := t.Spec.(*tools.Spec).SQL()
		ps, err := db.PrepareContext(ctx, stmt)
		if err != nil {
			probs = append(probs, toolProblem(t, "/sql/statement", "the database refuses the statement: "+err.Error()))
			continue
		}
		_ = ps.Close()
	}
	return probs
}

func pathReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// reachHTTP sends HEAD base_url; any HTTP answer means reachable.
func reachHTTP(ctx context.Context, baseURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, baseURL, nil)
	if err != nil {
		return err
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			return ue.Unwrap()
		}
		return err
	}
	resp.Body.Close()
	return nil
}

// sqlTools keeps the tools that run SQL (stand-ins for broken files run
// nothing).
func sqlTools(ts []*broker.Tool) []*broker.Tool {
	var out []*broker.Tool
	for _, t := range ts {
		if sp, ok := t.Spec.(*tools.Spec); ok {
			if _, _, isSQL := sp.SQL(); isSQL {
				out = append(out, t)
			}
		}
	}
	return out
}
