package mask

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// TestCredentialsRedactedByValue: the credentials toolgate injects are
// replaced wherever they appear, however they are spelled, in results,
// records, text and passthrough cells, with no detector involved (they
// look like nothing a detector knows); short values are not treated as
// credentials.
func TestCredentialsRedactedByValue(t *testing.T) {
	const apiKey = `k3y-"0penSesame"<&>`
	const pgPass = "pg-pass-word-1"
	core, logs := observer.New(zap.WarnLevel)
	m, err := New(Config{
		Detectors: map[string]bool{"secret": false, "email": false},
		Secrets: []Secret{
			{Where: "targets.api.headers.X-Api-Key", Value: apiKey},
			{Where: "targets.billing.headers.Authorization", Value: "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+pgPass))},
			{Where: "targets.api.headers.X-Short", Value: "tiny1"},
		},
	}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if logs.FilterField(zap.String("where", "targets.api.headers.X-Short")).Len() != 1 || strings.Contains(logs.All()[0].Message, "tiny1") {
		t.Errorf("the short credential was not reported by its place: %v", logs.All())
	}
	jsonEscaped, _ := json.Marshal(apiKey)
	unicodeEscaped := strings.ReplaceAll(string(jsonEscaped[1:len(jsonEscaped)-1]), "k3y", `\u006b3y`)
	basic := base64.StdEncoding.EncodeToString([]byte("svc:" + pgPass))
	for name, doc := range map[string]string{
		"echoed header":               `{"headers":{"X-Api-Key":` + string(jsonEscaped) + `}}`,
		"as an object key":            `{` + string(jsonEscaped) + `:1}`,
		"inside escaped JSON":         `{"body":` + mustJSON(`{"key":`+string(jsonEscaped)+`}`) + `}`,
		"spelled with unicode escape": `{"k":"` + unicodeEscaped + `"}`,
		"url-encoded in a query":      `{"url":"https://x/?key=k3y-%220penSesame%22%3C%26%3E"}`,
		"basic auth header":           `{"auth":"Basic ` + basic + `"}`,
		"basic password alone":        `{"err":"password ` + pgPass + ` rejected"}`,
		"not JSON":                    `key=` + apiKey + ` and ` + basic,
	} {
		t.Run(name, func(t *testing.T) {
			for what, out := range map[string]string{"result": result(t, m, doc), "record": record(t, m, doc), "text": m.MaskText(doc)} {
				if strings.Contains(out, "0penSesame") || strings.Contains(out, pgPass) || strings.Contains(out, basic) {
					t.Errorf("%s keeps the credential: %s", what, out)
				}
				if !strings.Contains(out, credentialReplacement) {
					t.Errorf("%s lacks %s: %s", what, credentialReplacement, out)
				}
				if what != "text" && name != "not JSON" && !json.Valid([]byte(out)) {
					t.Errorf("%s is not JSON: %s", what, out)
				}
			}
		})
	}
	_, stats, _ := m.MaskResult(&broker.Tool{Name: "t"}, []byte(`{"a":`+string(jsonEscaped)+`,"b":"`+pgPass+`"}`))
	if stats[credentialStat] != 2 {
		t.Errorf("stats = %v, want 2 credential hits", stats)
	}
	if cell, changed := m.MaskCell("crm", "t.c", []byte("pw="+pgPass)); !changed || strings.Contains(string(cell), pgPass) {
		t.Errorf("cell = %q", cell)
	}
	if out := m.MaskText("tiny1 and tiny12"); out != "tiny1 and tiny12" {
		t.Errorf("a short value was redacted: %q", out)
	}
}

func mustJSON(s string) string { b, _ := json.Marshal(s); return string(b) }

func result(t *testing.T, m *Masker, doc string) string {
	t.Helper()
	out, _, err := m.MaskResult(&broker.Tool{Name: "t", Target: "api"}, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func record(t *testing.T, m *Masker, doc string) string {
	t.Helper()
	out, err := m.MaskRecord([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestSecretsFromConfig: the credentials of a config are its target header
// values (not Accept or Content-Type), DSN and base_url passwords, Slack
// and webhook secrets and keys.
func TestSecretsFromConfig(t *testing.T) {
	c := config.Config{
		Store: config.Store{Driver: "postgres", DSN: "host=db user=tg password='store pass 1' dbname=tg"},
		Targets: map[string]config.Target{
			"api": {Kind: "http", HTTP: &config.HTTPTarget{BaseURL: "https://svc:base-pass-1@api.internal", Headers: map[string]string{
				"X-Api-Key": "api-key-value-1", "Accept": "application/json", "Content-Type": "application/json"}}},
			"crm": {Kind: "postgres", Postgres: &config.PostgresTarget{DSN: "postgres://crm:crm-pass-1@db/crm"}},
		},
		Approvals: config.Approvals{Slack: &config.Slack{BotToken: "xoxb-bot-token-1", SigningSecret: "signing-secret-1"},
			OnDecision: &config.OnDecision{Secret: "webhook-secret-1"}},
		Masking: config.Masking{HashKey: "hash-key-value-1"},
		Metrics: config.Metrics{Token: "metrics-token-1"},
		Telemetry: config.Telemetry{OTLP: config.OTLP{Endpoint: "https://otlp.example.com",
			Headers: map[string]string{"x-honeycomb-team": "otlp-key-1", "content-type": "application/json"}}},
	}
	got := map[string]string{}
	for _, s := range SecretsFromConfig(c) {
		got[s.Where+"="+s.Value] = s.Value
	}
	for _, want := range []string{
		"store.dsn=store pass 1", "targets.api.headers.X-Api-Key=api-key-value-1", "targets.api.base_url=base-pass-1",
		"targets.api.base_url=" + base64.StdEncoding.EncodeToString([]byte("svc:base-pass-1")), "targets.crm.dsn=crm-pass-1",
		"approvals.slack.bot_token=xoxb-bot-token-1", "approvals.slack.signing_secret=signing-secret-1",
		"approvals.on_decision.secret=webhook-secret-1", "masking.hash_key=hash-key-value-1", "metrics.token=metrics-token-1",
		"telemetry.otlp.headers.x-honeycomb-team=otlp-key-1",
	} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for k := range got {
		if strings.Contains(k, "application/json") {
			t.Errorf("a plain header is treated as a credential: %s", k)
		}
	}
}

// TestRedactingWriter: log output never carries a configured credential,
// whatever wrote it.
func TestRedactingWriter(t *testing.T) {
	var b strings.Builder
	w := RedactingWriter(&b, []Secret{{Where: "targets.api.headers.X-Api-Key", Value: `k3y-"0penSesame"`}})
	line := `{"msg":"target said","error":"bad key k3y-\"0penSesame\""}` + "\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(b.String(), "0penSesame") || !strings.Contains(b.String(), credentialReplacement) {
		t.Errorf("log line = %s", b.String())
	}
	if RedactingWriter(&b, nil) != &b {
		t.Error("without secrets the writer is not passed through")
	}
}
