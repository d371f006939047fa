package scaffold

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"

	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/toolgate/toolgate/internal/testenv"

	"github.com/toolgate/toolgate/internal/config"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// secretSamples are stored in the test tables; no draft or note may
// contain one.
var secretSamples = []string{"4242424242424242", "ada@example.com", "123-45-6789", "GB82WEST12345698765432"}

// hitDetector reports "card" for values holding a test card number.
type hitDetector struct{}

func (hitDetector) Detect(v string) []string {
	if strings.Contains(v, "4242424242424242") {
		return []string{"card"}
	}
	return nil
}

// decoded is a draft's declaration as JSON.
type decoded struct {
	Name        string          `json:"name"`
	Schema      string          `json:"$schema"`
	InputSchema json.RawMessage `json:"input_schema"`
	SQL         struct {
		Statement string
		Args      []string
	} `json:"sql"`
	HTTP struct {
		Method, Path, Body string
		Query              map[string]string
	} `json:"http"`
	Annotations map[string]bool   `json:"annotations"`
	Mask        map[string]string `json:"mask"`
}

func decode(t *testing.T, d Draft) decoded {
	t.Helper()
	var out decoded
	if err := json.Unmarshal(d.JSON, &out); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = json.Compact(&b, out.InputSchema)
	out.InputSchema = b.Bytes()
	return out
}

func byName(t *testing.T, ds []Draft) map[string]decoded {
	t.Helper()
	m := map[string]decoded{}
	for _, d := range ds {
		m[d.Name] = decode(t, d)
	}
	return m
}

// noSamples fails when a draft or a note holds a sampled value.
func noSamples(t *testing.T, ds []Draft, ns []Note) {
	t.Helper()
	var all strings.Builder
	for _, d := range ds {
		all.Write(d.JSON)
	}
	for _, n := range ns {
		all.WriteString(n.Text)
	}
	for _, s := range secretSamples {
		if strings.Contains(all.String(), s) {
			t.Errorf("a draft or note holds the sampled value %q", s)
		}
	}
}

func TestSQLiteDrafts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	_, err = db.ExecContext(ctx, `
		CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, contact TEXT, note TEXT, balance REAL, active BOOLEAN);
		CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), status TEXT NOT NULL DEFAULT 'new', created_at DATETIME);
		CREATE TABLE tags (label TEXT);
		INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', 'card 4242424242424242', 1.5, 1);`)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Draft
	var ns []Note
	for _, name := range []string{"customers", "orders", "tags"} {
		tbl, err := SQLiteTable(ctx, db, name)
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := TableDrafts(tbl, config.KindSQLite, Options{Target: "demo", Writes: true, Detector: hitDetector{}})
		if err != nil {
			t.Fatal(err)
		}
		ds, ns = append(ds, d...), append(ns, n...)
	}
	noSamples(t, ds, ns)
	got := byName(t, ds)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"demo_get_customers", "demo_get_orders", "demo_insert_customers", "demo_insert_orders", "demo_insert_tags",
		"demo_list_customers", "demo_list_orders", "demo_list_tags", "demo_update_customers", "demo_update_orders"}
	if !slices.Equal(names, want) {
		t.Fatalf("drafts = %v\nwant %v", names, want)
	}
	c := got["demo_get_customers"]
	if c.SQL.Statement != `SELECT "id", "name", "contact", "note", "balance", "active" FROM "customers" WHERE "id" = $1` || !slices.Equal(c.SQL.Args, []string{"id"}) {
		t.Errorf("get = %+v", c.SQL)
	}
	if c.Mask["rows.#.contact"] != "" || c.Mask["rows.#.note"] != "last4" {
		t.Errorf("masks = %v: note holds a card (detector), contact is not named sensitively and the test detector only sees cards", c.Mask)
	}
	if !c.Annotations["readOnlyHint"] {
		t.Errorf("get is not read-only: %v", c.Annotations)
	}
	o := got["demo_list_orders"]
	if !slices.Equal(o.SQL.Args, []string{"id", "customer_id", "status", "limit"}) || !strings.Contains(o.SQL.Statement, `("customer_id" = $2 OR $2 IS NULL)`) || !strings.HasSuffix(o.SQL.Statement, "LIMIT coalesce($4, 50)") {
		t.Errorf("list orders = %+v", o.SQL)
	}
	ins := got["demo_insert_orders"]
	if !ins.Annotations["destructiveHint"] || slices.Contains(ins.SQL.Args, "id") || slices.Contains(ins.SQL.Args, "status") {
		t.Errorf("insert orders = %+v %v (id is the rowid and status has a default: both left to the database)", ins.SQL, ins.Annotations)
	}
	var in struct {
		Properties map[string]map[string]any `json:"properties"`
		Required   []string                  `json:"required"`
	}
	_ = json.Unmarshal(ins.InputSchema, &in)
	if in.Properties["customer_id"]["type"] != "integer" || in.Properties["created_at"]["format"] != "date-time" || !slices.Equal(in.Required, []string{"customer_id"}) {
		t.Errorf("insert input schema = %s", ins.InputSchema)
	}
	if !got["demo_update_customers"].Annotations["destructiveHint"] {
		t.Error("update is not marked destructive")
	}
	// Every draft runs on the real database as written.
	for _, d := range ds {
		stmt := byName(t, []Draft{d})[d.Name].SQL.Statement
		if ps, err := db.PrepareContext(ctx, stmt); err != nil {
			t.Errorf("%s does not prepare: %v", d.Name, err)
		} else {
			ps.Close()
		}
	}
	if _, err := SQLiteTable(ctx, db, "nope"); err == nil {
		t.Error("a missing table was read")
	}
}

func TestPostgresDrafts(t *testing.T) {
	pg := testenv.Postgres(t)
	dsn := pg.CreateDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		CREATE SCHEMA crm;
		CREATE TABLE crm.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, ssn text, memo text, created timestamptz NOT NULL DEFAULT now(), ref uuid);
		COMMENT ON TABLE crm.customers IS 'People who bought something.';
		COMMENT ON COLUMN crm.customers.memo IS 'Free text from support.';
		CREATE TABLE crm.orders (id int PRIMARY KEY, customer_id bigint NOT NULL REFERENCES crm.customers(id), total numeric(10,2) NOT NULL, paid boolean NOT NULL DEFAULT false, meta jsonb);
		INSERT INTO crm.customers (email, ssn, memo) VALUES ('ada@example.com', '123-45-6789', 'iban GB82WEST12345698765432');`)
	if err != nil {
		t.Fatal(err)
	}
	var ds []Draft
	var ns []Note
	for _, name := range []string{"crm.customers", "crm.orders"} {
		tbl, err := PostgresTable(ctx, conn, name)
		if err != nil {
			t.Fatal(err)
		}
		d, n, err := TableDrafts(tbl, config.KindPostgres, Options{Target: "crm", Writes: true})
		if err != nil {
			t.Fatal(err)
		}
		ds, ns = append(ds, d...), append(ns, n...)
	}
	noSamples(t, ds, ns)
	got := byName(t, ds)
	c := got["crm_get_crm_customers"]
	if c.Mask["rows.#.email"] != "email" || c.Mask["rows.#.ssn"] != "redact" {
		t.Errorf("masks by name = %v", c.Mask)
	}
	if !strings.Contains(string(c.InputSchema), "People who bought") && !strings.Contains(string(ds[0].JSON), "People who bought") {
		t.Errorf("the table comment is not in the description")
	}
	ord := got["crm_list_crm_orders"]
	if !slices.Equal(ord.SQL.Args, []string{"id", "customer_id", "limit"}) {
		t.Errorf("list orders args = %v", ord.SQL.Args)
	}
	if !strings.Contains(string(ord.InputSchema), "refers to crm.customers.id") {
		t.Errorf("foreign key not described: %s", ord.InputSchema)
	}
	if slices.Contains(got["crm_insert_crm_customers"].SQL.Args, "id") || slices.Contains(got["crm_insert_crm_customers"].SQL.Args, "created") {
		t.Errorf("insert fills an identity or defaulted column: %v", got["crm_insert_crm_customers"].SQL.Args)
	}
	// Every draft prepares on the real server, parameter types included.
	for _, d := range ds {
		if _, err := conn.Prepare(ctx, "", got[d.Name].SQL.Statement); err != nil {
			t.Errorf("%s does not prepare: %v", d.Name, err)
		}
	}
	if _, err := PostgresTable(ctx, conn, "crm.nope"); err == nil {
		t.Error("a missing table was read")
	}
}

const openAPI30 = `openapi: 3.0.3
info: {title: Billing, version: "1"}
paths:
  /v1/invoices/{invoice_id}:
    parameters:
      - {name: invoice_id, in: path, required: true, schema: {type: string, pattern: "^inv_"}}
    get:
      operationId: getInvoice
      summary: Get an invoice
      parameters:
        - {name: expand, in: query, schema: {type: array, items: {type: string, enum: [lines]}}}
        - {name: X-Trace, in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
  /v1/refunds:
    post:
      operationId: createRefund
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Refund"}
      responses: {"201": {description: created}}
components:
  schemas:
    Refund:
      type: object
      required: [amount]
      properties:
        amount: {type: number, minimum: 0, exclusiveMinimum: true}
        note: {type: string, nullable: true, example: "x"}
`

const openAPI31 = `{"openapi": "3.1.0", "info": {"title": "T", "version": "1"},
 "paths": {"/items/{id}": {"delete": {"operationId": "deleteItem",
   "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": ["integer"], "exclusiveMinimum": 0}}],
   "responses": {"204": {"description": "gone"}}}}}}`

func TestOpenAPIDrafts(t *testing.T) {
	for name, spec := range map[string]string{"3.0 yaml": openAPI30, "3.1 json": openAPI31} {
		t.Run(name, func(t *testing.T) {
			loader := openapi3.NewLoader()
			doc, err := loader.LoadFromData([]byte(spec))
			if err != nil {
				t.Fatal(err)
			}
			if err := doc.Validate(loader.Context); err != nil {
				t.Fatal(err)
			}
			ds, ns, err := OpenAPIDrafts(doc, nil, Options{Target: "billing", SchemaRef: "../tool.schema.json"})
			if err != nil {
				t.Fatal(err)
			}
			got := byName(t, ds)
			if name == "3.1 json" {
				d := got["billing_delete_item"]
				if d.HTTP.Method != "DELETE" || d.HTTP.Path != "/items/{id}" || !d.Annotations["destructiveHint"] || !strings.Contains(string(d.InputSchema), `"exclusiveMinimum":0`) {
					t.Errorf("delete = %+v %s", d, d.InputSchema)
				}
				return
			}
			g := got["billing_get_invoice"]
			if g.HTTP.Path != "/v1/invoices/{invoice_id}" || g.HTTP.Query["expand"] != "expand" || !g.Annotations["readOnlyHint"] || g.Schema != "../tool.schema.json" {
				t.Errorf("get = %+v", g)
			}
			if strings.Contains(string(g.InputSchema), "X-Trace") || len(ns) == 0 {
				t.Errorf("a header parameter became an argument, or no note says it was left out: %s %v", g.InputSchema, ns)
			}
			r := got["billing_create_refund"]
			if r.HTTP.Body != "body" || !strings.Contains(string(r.InputSchema), `"exclusiveMinimum":0`) || !strings.Contains(string(r.InputSchema), `"null"`) || strings.Contains(string(r.InputSchema), "example") {
				t.Errorf("refund = %+v %s", r.HTTP, r.InputSchema)
			}
			if _, _, err := OpenAPIDrafts(doc, []string{"nope"}, Options{Target: "billing"}); err == nil {
				t.Error("an unknown operationId was accepted")
			}
			only, _, _ := OpenAPIDrafts(doc, []string{"createRefund"}, Options{Target: "billing"})
			if len(only) != 1 || only[0].Name != "billing_create_refund" {
				t.Errorf("--operations createRefund drafted %d tools", len(only))
			}
		})
	}
}
