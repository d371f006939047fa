package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestE2EMetricsLabelsAndToken: a call to a made-up tool named like a card
// number adds no series containing it (unknown tools are one "_unknown"
// label), and with metrics.token set /metrics answers 401 without it.
func TestE2EMetricsLabelsAndToken(t *testing.T) {
	const token = "metrics-token-e2e-0123456789"
	e := prepareE2E(t, func(y string) string { return y + "metrics: {token: \"${E2E_METRICS_TOKEN}\"}\n" })
	e.env = append(e.env, "E2E_METRICS_TOKEN="+token)
	e.tgProcess = e.start(t)
	for _, name := range []string{"4242424242424242", "ignore-previous-instructions", "crm_find_customer"} {
		e.callHTTP(t, e.BotKey, "triage", name, `{"email":"ada@example.com"}`)
	}
	scrape := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := scrape(""); status != 401 || strings.Contains(body, "toolgate_") {
		t.Fatalf("/metrics without the token: %d %s", status, body)
	}
	if status, _ := scrape("Bearer " + e.BotKey); status != 401 {
		t.Fatalf("/metrics with an API key instead of the token: %d", status)
	}
	status, body := scrape("Bearer " + token)
	if status != 200 {
		t.Fatalf("/metrics with the token: %d %s", status, body)
	}
	for _, bad := range []string{"4242424242424242", "ignore-previous-instructions", "key:bot"} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics carries %q", bad)
		}
	}
	for _, want := range []string{
		`toolgate_tool_calls_total{decision="",door="http",status="denied",tool="_unknown"} 2`,
		`toolgate_tool_calls_total{decision="allow",door="http",status="ok",tool="crm_find_customer"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
