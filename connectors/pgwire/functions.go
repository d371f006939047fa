package pgwire

import (
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// builtinFunctions are the built-in PostgreSQL functions a passthrough
// statement may call without a rule: each computes its result from its
// arguments alone (or from the clock or a random source), changes nothing,
// and reads no relation, file, setting of another session or server
// state. The list follows the sections of "Functions and Operators" in the
// PostgreSQL documentation (chapter 9 of the 17 manual); a section absent
// here is left out on purpose, and so is every function of a listed
// section that reads a relation or server state or has a side effect
// (ts_stat, ts_rewrite, the *_to_xml mapping functions, pg_sleep*, setseed,
// every sequence function, every system administration function, ...).
// Type names are listed too: `x::int4` and `int4(x)` call the same cast
// or input function, and PostgreSQL resolves `name(x)` to a cast when name
// is a type. TestBuiltinFunctionsExist checks every name against a real
// server's catalog, and that the only volatile ones read a clock or a
// random source.
var builtinFunctions = setOf(
	// 9.2 comparison functions.
	"num_nonnulls", "num_nulls",
	// 9.3 mathematical functions, including the random functions.
	"abs", "cbrt", "ceil", "ceiling", "degrees", "div", "erf", "erfc", "exp", "factorial", "floor", "gamma", "gcd",
	"lcm", "lgamma", "ln", "log", "log10", "min_scale", "mod", "pi", "power", "radians", "round", "scale", "sign",
	"sqrt", "trim_scale", "trunc", "width_bucket", "random", "random_normal",
	"acos", "acosd", "asin", "asind", "atan", "atand", "atan2", "atan2d", "cos", "cosd", "cot", "cotd", "sin", "sind",
	"tan", "tand", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
	// 9.4 string functions (SUBSTRING, POSITION, OVERLAY, TRIM and IS
	// NORMALIZED are parsed to pg_catalog calls of these names).
	"ascii", "bit_length", "btrim", "casefold", "char_length", "character_length", "chr", "concat", "concat_ws", "format",
	"initcap", "is_normalized", "left", "length", "lower", "lpad", "ltrim", "md5", "normalize", "octet_length",
	"overlay", "parse_ident", "pg_client_encoding", "position", "quote_ident", "quote_literal", "quote_nullable",
	"repeat", "replace", "reverse", "right", "rpad", "rtrim", "split_part", "starts_with", "string_to_array",
	"string_to_table", "strpos", "substr", "substring", "to_ascii", "to_bin", "to_hex", "to_oct", "translate",
	"unicode_assigned", "unistr", "upper",
	// 9.5 binary string functions.
	"bit_count", "convert", "convert_from", "convert_to", "crc32", "crc32c", "decode", "encode", "get_bit", "get_byte",
	"set_bit", "set_byte", "sha224", "sha256", "sha384", "sha512",
	// 9.7 pattern matching (LIKE ... ESCAPE and SIMILAR TO call the
	// *_escape functions).
	"like_escape", "similar_to_escape", "regexp_count", "regexp_instr", "regexp_like", "regexp_match",
	"regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table", "regexp_substr",
	// 9.8 data type formatting functions.
	"to_char", "to_date", "to_number", "to_timestamp",
	// 9.9 date/time functions (EXTRACT, AT TIME ZONE and OVERLAPS are
	// parsed to pg_catalog calls of extract, timezone and overlaps).
	"age", "clock_timestamp", "date_add", "date_bin", "date_part", "date_subtract", "date_trunc", "extract",
	"isfinite", "justify_days", "justify_hours", "justify_interval", "make_date", "make_interval", "make_time",
	"make_timestamp", "make_timestamptz", "now", "overlaps", "statement_timestamp", "timeofday", "timezone",
	"transaction_timestamp",
	// 9.10 enum support functions.
	"enum_first", "enum_last", "enum_range",
	// 9.11 geometric functions.
	"area", "bound_box", "box", "center", "circle", "diagonal", "diameter", "height", "isclosed", "isopen", "line",
	"lseg", "npoints", "path", "pclose", "point", "polygon", "popen", "radius", "slope", "width",
	// 9.12 network address functions.
	"abbrev", "broadcast", "family", "host", "hostmask", "inet_merge", "inet_same_family", "macaddr8_set7bit",
	"masklen", "netmask", "network", "set_masklen",
	// 9.13 text search functions, without ts_rewrite and ts_stat (they
	// run SQL) and the debugging functions (ts_debug reads catalogs).
	"array_to_tsvector", "get_current_ts_config", "json_to_tsvector", "jsonb_to_tsvector", "numnode",
	"phraseto_tsquery", "plainto_tsquery", "querytree", "setweight", "strip", "to_tsquery", "to_tsvector",
	"ts_delete", "ts_filter", "ts_headline", "ts_rank", "ts_rank_cd", "tsquery_phrase", "tsvector_to_array",
	"websearch_to_tsquery",
	// 9.14 UUID functions.
	"gen_random_uuid", "uuid_extract_timestamp", "uuid_extract_version", "uuidv4", "uuidv7",
	// 9.15 XML functions, without the mapping functions (query_to_xml,
	// table_to_xml, cursor_to_xml, ... run SQL or read relations).
	"xml_is_well_formed", "xml_is_well_formed_content", "xml_is_well_formed_document", "xmlagg", "xmlcomment",
	"xmlexists", "xmltext", "xpath", "xpath_exists",
	// 9.16 JSON functions, without the *_populate_record* functions: they
	// convert to a table's row type, whose domains' CHECKs and types'
	// input functions may run anything (the *_to_record forms name their
	// column types, which are checked as casts are).
	"array_to_json", "json_array_elements", "json_array_elements_text", "json_array_length", "json_build_array",
	"json_build_object", "json_each", "json_each_text", "json_extract_path", "json_extract_path_text", "json_object",
	"json_object_keys", "json_strip_nulls", "json_to_record",
	"json_to_recordset", "json_typeof", "jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length",
	"jsonb_build_array", "jsonb_build_object", "jsonb_each", "jsonb_each_text", "jsonb_extract_path",
	"jsonb_extract_path_text", "jsonb_insert", "jsonb_object", "jsonb_object_keys", "jsonb_path_exists",
	"jsonb_path_exists_tz", "jsonb_path_match", "jsonb_path_match_tz", "jsonb_path_query", "jsonb_path_query_array",
	"jsonb_path_query_array_tz", "jsonb_path_query_first", "jsonb_path_query_first_tz", "jsonb_path_query_tz",
	"jsonb_pretty", "jsonb_set",
	"jsonb_set_lax", "jsonb_strip_nulls", "jsonb_to_record", "jsonb_to_recordset", "jsonb_typeof", "row_to_json",
	"to_json", "to_jsonb",
	// 9.19 array functions.
	"array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower", "array_ndims",
	"array_position", "array_positions", "array_prepend", "array_remove", "array_replace", "array_reverse",
	"array_sample", "array_shuffle", "array_sort", "array_to_string", "array_upper", "cardinality", "trim_array",
	"unnest",
	// 9.20 range and multirange functions.
	"isempty", "lower_inc", "lower_inf", "multirange", "range_merge", "upper_inc", "upper_inf",
	// 9.21 aggregate functions.
	"any_value", "array_agg", "avg", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or", "corr", "count",
	"covar_pop", "covar_samp", "every", "json_agg", "json_agg_strict", "json_object_agg", "json_object_agg_strict",
	"json_object_agg_unique", "json_object_agg_unique_strict", "jsonb_agg", "jsonb_agg_strict", "jsonb_object_agg",
	"jsonb_object_agg_strict", "jsonb_object_agg_unique", "jsonb_object_agg_unique_strict", "max", "min", "mode",
	"percentile_cont", "percentile_disc", "range_agg", "range_intersect_agg", "regr_avgx", "regr_avgy", "regr_count",
	"regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "stddev", "stddev_pop",
	"stddev_samp", "string_agg", "sum", "var_pop", "var_samp", "variance",
	// 9.22 window functions (rank and friends are also 9.21's
	// hypothetical-set aggregates).
	"cume_dist", "dense_rank", "first_value", "lag", "last_value", "lead", "nth_value", "ntile", "percent_rank",
	"rank", "row_number",
	// 9.26 set returning functions.
	"generate_series", "generate_subscripts",
	// 9.27 system information functions: only those that describe the
	// session's own names or a value, not the catalogs, privileges or
	// server activity. current_setting reads what SHOW reads.
	"current_database", "current_schema", "current_schemas", "current_setting", "pg_column_compression",
	"pg_column_size", "pg_typeof", "version",
	// 9.28 system administration functions: the two pure size formatters.
	"pg_size_bytes", "pg_size_pretty",
	// Type names (casts and input functions). regclass, regproc, regtype,
	// regrole, regnamespace and the other reg* types look up the catalogs
	// and are left out; regconfig is kept for text search.
	"bool", "int2", "int4", "int8", "float4", "float8", "numeric", "money", "text", "varchar", "bpchar", "char",
	"name", "bytea", "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "json", "jsonb",
	"jsonpath", "xml", "inet", "cidr", "macaddr", "macaddr8", "bit", "varbit", "tsvector", "tsquery", "regconfig",
	"oid", "record", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "int4multirange",
	"int8multirange", "nummultirange", "tsmultirange", "tstzmultirange", "datemultirange",
)

// builtinOperators are the operator symbols of PostgreSQL's built-in
// operators (every oprname of pg_operator in a fresh cluster). All are
// implemented by immutable or stable functions of their operands.
var builtinOperators = setOf("!!", "!~", "!~*", "!~~", "!~~*", "#", "##", "#-", "#>", "#>>", "%", "&", "&&", "&<", "&<|",
	"&>", "*", "*<", "*<=", "*<>", "*=", "*>", "*>=", "+", "-", "->", "->>", "-|-", "/", "<", "<->", "<<", "<<=", "<<|",
	"<=", "<>", "<@", "<^", "=", ">", ">=", ">>", ">>=", ">^", "?", "?#", "?&", "?-", "?-|", "?|", "?||", "@", "@-@",
	"@>", "@?", "@@", "@@@", "^", "^@", "|", "|&>", "|/", "|>>", "||", "||/", "~", "~*", "~<=~", "~<~", "~=",
	"~>=~", "~>~", "~~", "~~*")

// tablesampleMethods are the built-in TABLESAMPLE methods.
var tablesampleMethods = setOf("system", "bernoulli")

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// qualifiedName renders a function, type or operator name as PostgreSQL
// spells it: parts joined by dots, each part that is not a plain lower-case
// identifier in double quotes. Operator symbols are never quoted.
func qualifiedName(parts []string, operator bool) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if operator && i == len(parts)-1 || broker.PlainIdentifier(p) {
			b.WriteString(p)
			continue
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(p, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}

// builtin reports whether a function or type name, as the parser gives
// it, is on the list: unqualified or in schema pg_catalog. A name in any
// other schema is another function, whatever its last part.
func builtin(parts []string, list map[string]bool) bool {
	switch len(parts) {
	case 1:
		return list[parts[0]]
	case 2:
		return parts[0] == "pg_catalog" && list[parts[1]]
	}
	return false
}
