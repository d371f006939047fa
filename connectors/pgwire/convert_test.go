package pgwire

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/internal/testenv"
)

// binaryCases are expressions whose binary form the converter must build
// from their text exactly as the server does.
var binaryCases = []string{
	"1::int2", "(-32768)::int2", "2147483647::int4", "4111111111111111::int8", "(-1)::int8", "42::oid",
	"true", "false", "1.5::float4", "0.1::float8", "1e300::float8", "'Infinity'::float8", "'NaN'::float8", "'-Infinity'::float4",
	"4111111111111111.00::numeric", "'NaN'::numeric", "0.000001234::numeric", "-12345678901234567890.5::numeric",
	"'2024-02-29'::date", "'infinity'::date", "'2024-02-29 13:14:15.123456'::timestamp", "'2024-02-29 13:14:15.5+02'::timestamptz",
	"'-infinity'::timestamptz", "'13:14:15.25'::time", "'1 year 2 mons 3 days 04:05:06.5'::interval", "'-1 day'::interval",
	"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "'\\x00ff10'::bytea", "''::bytea",
	`'{"a": [1, 2.5, "x"]}'::jsonb`, `'{"a":1}'::json`, "'hello'::text", "'x'::varchar", "'ab'::char(4)", "'n'::name",
	"ARRAY[1,2,3]", "ARRAY['4111111111111111','b']", "ARRAY[[1,2],[3,4]]", "'{}'::int4[]", "ARRAY[1,NULL]::int8[]",
	"'192.168.0.1/24'::inet", "'10.0.0.0/8'::cidr", "'08:00:2b:01:02:03'::macaddr", "B'1011'::bit(4)",
	"'a'::\"char\"", "'2024-01-01'::date - '2023-01-01'::date",
	"to_jsonb('x'::text)", "convert_to('héllo', 'UTF8')", "'1 day'::interval * 1.5",
	"0::numeric", "(-0.5)::numeric", "100000000::numeric", "1e-20::float8", "(-1.5)::float4", "ARRAY[1.5::float4, -2]",
	"ARRAY[true, false, NULL]", "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]", "ARRAY['\\x01'::bytea]",
	`ARRAY['a b', 'c"d', NULL, '']::text[]`, "B'101'::varbit", "'[2:3]={1,2}'::int4[]", "ARRAY[4111111111111111]",
	"'{{{1}}}'::int8[]", "ARRAY['x'::varchar]", "ARRAY['y'::name]",
}

// refusedInBinary are expressions whose type toolgate does not convert.
var refusedInBinary = []string{
	"ROW(1, 'a')", "'[1,5)'::int4range", "'(1.5,2.5)'::point", "123.45::money", "ARRAY['{}'::jsonb]",
	"ARRAY[now()]", "'pg_class'::regclass", "ARRAY[ROW(1)]",
}

// connectDirect opens a connection straight to a fresh test database.
func connectDirect(t *testing.T) *pgconn.PgConn {
	t.Helper()
	pg := testenv.Postgres(t)
	conn, err := pgconn.Connect(context.Background(), pg.PasswordDSN(testenv.DBName(pg.CreateDB(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestConverterMatchesServer(t *testing.T) {
	ctx := context.Background()
	conn := connectDirect(t)
	params := map[string]string{"DateStyle": conn.ParameterStatus("DateStyle"), "IntervalStyle": conn.ParameterStatus("IntervalStyle")}
	c := newConverter()
	for _, expr := range binaryCases {
		text := conn.ExecParams(ctx, "SELECT "+expr, nil, nil, nil, []int16{0}).Read()
		bin := conn.ExecParams(ctx, "SELECT "+expr, nil, nil, nil, []int16{1}).Read()
		if text.Err != nil || bin.Err != nil {
			t.Fatalf("%s: %v %v", expr, text.Err, bin.Err)
		}
		f := text.FieldDescriptions[0]
		fields := []pgproto3.FieldDescription{{Name: []byte(f.Name), DataTypeOID: f.DataTypeOID}}
		if why := c.explain(fields, []int16{1}, func(k string) string { return params[k] }); why != "" {
			t.Errorf("%s (OID %d) is refused in binary: %s", expr, f.DataTypeOID, why)
			continue
		}
		got, err := c.toBinary(f.DataTypeOID, text.Rows[0][0])
		if err != nil || !bytes.Equal(got, bin.Rows[0][0]) {
			t.Errorf("%s (OID %d): text %q converts to %x, %v; the server sends %x", expr, f.DataTypeOID, text.Rows[0][0], got, err, bin.Rows[0][0])
			continue
		}
		back, err := c.toText(f.DataTypeOID, bin.Rows[0][0])
		if err != nil {
			t.Errorf("%s: binary to text: %v", expr, err)
			continue
		}
		if again, err := c.toBinary(f.DataTypeOID, back); err != nil || !bytes.Equal(again, bin.Rows[0][0]) {
			t.Errorf("%s: binary -> %q -> %x, %v", expr, back, again, err)
		}
	}
}

func TestConverterRefuses(t *testing.T) {
	ctx := context.Background()
	conn := connectDirect(t)
	iso := map[string]string{"DateStyle": "ISO, MDY", "IntervalStyle": "postgres"}
	c := newConverter()
	for _, expr := range append(refusedInBinary, "1") {
		res := conn.ExecParams(ctx, "SELECT "+expr+" AS v", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("%s: %v", expr, res.Err)
		}
		f := res.FieldDescriptions[0]
		fields := []pgproto3.FieldDescription{{Name: []byte(f.Name), DataTypeOID: f.DataTypeOID}}
		why := c.explain(fields, []int16{1}, func(k string) string { return iso[k] })
		if (why == "") != (expr == "1") || (why != "" && !strings.Contains(why, `"v"`)) {
			t.Errorf("%s (OID %d): %q", expr, f.DataTypeOID, why)
		}
		if c.explain(fields, []int16{0}, func(k string) string { return iso[k] }) != "" {
			t.Errorf("%s is refused in text format", expr)
		}
	}
	date := []pgproto3.FieldDescription{{Name: []byte("d"), DataTypeOID: 1082}}
	if why := c.explain(date, []int16{1}, func(k string) string {
		return map[string]string{"DateStyle": "German, DMY", "IntervalStyle": "postgres"}[k]
	}); !strings.Contains(why, "DateStyle") {
		t.Errorf("binary date under DateStyle German: %q", why)
	}
}
