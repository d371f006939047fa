package pgwire

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/internal/testenv"
)

// newerBuiltins are listed functions added after the oldest PostgreSQL
// the tests run against (15), each checked in the release notes of the
// version that added it.
var newerBuiltins = setOf(
	// 16
	"any_value", "array_sample", "array_shuffle", "date_add", "date_subtract", "erf", "erfc", "json_agg_strict",
	"json_object_agg_strict", "json_object_agg_unique", "json_object_agg_unique_strict", "jsonb_agg_strict",
	"jsonb_object_agg_strict", "jsonb_object_agg_unique", "jsonb_object_agg_unique_strict", "random_normal",
	"to_bin", "to_oct", "xmltext",
	// 17
	"unicode_assigned", "uuid_extract_timestamp", "uuid_extract_version",
	// 18
	"array_reverse", "array_sort", "casefold", "crc32", "crc32c", "gamma", "lgamma", "uuidv4", "uuidv7",
)

// volatileBuiltins are the listed functions PostgreSQL marks volatile:
// they read a clock or a random source, nothing else.
var volatileBuiltins = setOf("random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid",
	"array_sample", "array_shuffle", "uuidv4", "uuidv7")

// TestBuiltinFunctionsExist checks the built-in lists against a real
// server's catalog: every function name is a function or type of
// pg_catalog (or a newer version's, listed above), the volatile ones are
// only clocks and random sources, none is on the known side-effect list
// the old blocklist held, and the operator list is exactly pg_operator's.
func TestBuiltinFunctionsExist(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	names := make([]string, 0, len(builtinFunctions))
	for n := range builtinFunctions {
		names = append(names, n)
	}
	missing := queryNames(t, c, `SELECT n FROM unnest($1::text[]) n
		WHERE NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname = n AND p.pronamespace = 'pg_catalog'::regnamespace)
		  AND NOT EXISTS (SELECT 1 FROM pg_type y WHERE y.typname = n AND y.typnamespace = 'pg_catalog'::regnamespace)`, names)
	for _, n := range missing {
		if !newerBuiltins[n] {
			t.Errorf("%s is neither a function nor a type of pg_catalog", n)
		}
	}
	volatile := queryNames(t, c, `SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY($1) AND provolatile = 'v'`, names)
	for _, n := range volatile {
		if !volatileBuiltins[n] {
			t.Errorf("%s is volatile: check that it changes nothing and reads no server state, then add it to volatileBuiltins", n)
		}
	}
	for _, n := range []string{"set_config", "nextval", "pg_sleep", "pg_read_file", "ts_stat", "ts_rewrite", "query_to_xml",
		"txid_current", "pg_current_xact_id", "pg_export_snapshot", "pg_stat_get_activity", "pg_hba_file_rules",
		"pg_show_all_file_settings", "pg_stat_reset", "lo_import", "regclass", "to_regclass", "pg_get_viewdef",
		"has_table_privilege", "pg_relation_size", "pg_input_is_valid", "format_type", "setseed",
		"json_populate_record", "json_populate_recordset", "jsonb_populate_record", "jsonb_populate_recordset", "jsonb_populate_record_valid"} {
		if builtinFunctions[n] {
			t.Errorf("%s is on the built-in list but reads outside the statement or has side effects", n)
		}
	}
	ops := queryNames(t, c, `SELECT DISTINCT oprname FROM pg_operator ORDER BY 1`, nil)
	var listed []string
	for o := range builtinOperators {
		listed = append(listed, o)
	}
	sort.Strings(listed)
	if !slices.Equal(ops, listed) {
		t.Errorf("builtinOperators = %v, pg_operator has %v", listed, ops)
	}
}

func queryNames(t *testing.T, c *pgx.Conn, sql string, arg []string) []string {
	t.Helper()
	var args []any
	if arg != nil {
		args = append(args, arg)
	}
	rows, err := c.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}
