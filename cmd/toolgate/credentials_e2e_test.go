package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// echoTarget is an HTTP target that hands back the request headers it got:
// as JSON, as text, and as JSON text inside a JSON string.
func echoTarget(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": r.Header})
	})
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_ = r.Header.Write(w)
	})
	mux.HandleFunc("/nested", func(w http.ResponseWriter, r *http.Request) {
		inner, _ := json.Marshal(r.Header)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"raw": string(inner), "key": r.Header.Get("X-Api-Key") + "!"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestE2EInjectedCredentialsNeverShown: an HTTP target that echoes the
// request headers, called as a tool and through the HTTP passthrough,
// never hands the agent the configured X-Api-Key (a value no detector
// recognises), however the target spells it; the audit trail and the log
// do not keep it either.
func TestE2EInjectedCredentialsNeverShown(t *testing.T) {
	const apiKey = "k3y-0pen-Sesame-7781"
	echo := echoTarget(t)
	e := prepareE2E(t, func(y string) string {
		y = strings.Replace(y, "targets:\n", "targets:\n  echo: {kind: http, base_url: \""+echo+"\", headers: {X-Api-Key: \"${E2E_ECHO_KEY}\", Accept: application/json}, timeout: 3s}\n", 1)
		y = strings.Replace(y, "      triage: {allow: [crm_find_customer, down_ping, api_*]}",
			"      triage:\n        allow: [crm_find_customer, down_ping, api_*, echo_*]\n        passthrough:\n"+
				"          echo: {methods: [GET], paths: [\"/headers\", \"/text\", \"/nested\"]}", 1)
		return y + "recordings: {results: masked}\npassthrough:\n  http: [{path_prefix: /proxy/echo, target: echo}]\n"
	})
	e.env = append(e.env, "E2E_ECHO_KEY="+apiKey)
	for _, p := range []string{"headers", "text", "nested"} {
		tool := fmt.Sprintf(`{"name": "echo_%s", "description": "Echo the request headers.", "target": "echo",
			"input_schema": {"type": "object", "additionalProperties": false}, "http": {"method": "GET", "path": "/%s"}}`, p, p)
		if err := os.WriteFile(filepath.Join(e.dir, "tools", "echo_"+p+".json"), []byte(tool), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.tgProcess = e.start(t)
	leaks := func(where, s string) {
		t.Helper()
		if strings.Contains(s, apiKey) || strings.Contains(s, "0pen-Sesame") {
			t.Errorf("%s holds the injected X-Api-Key: %s", where, s)
		}
	}
	for _, p := range []string{"headers", "text", "nested"} {
		status, out := e.callHTTP(t, e.BotKey, "triage", "echo_"+p, `{}`, "X-Toolgate-Run", "cred-run")
		if status != 200 || !strings.Contains(out["_raw"].(string), "[REDACTED:credential]") {
			t.Errorf("tool echo_%s: %d %s", p, status, out["_raw"])
		}
		leaks("the result of echo_"+p, out["_raw"].(string))

		req, _ := http.NewRequest(http.MethodGet, e.URL+"/proxy/echo/"+p, nil)
		req.Header.Set("Authorization", "Bearer "+e.BotKey)
		req.Header.Set("X-Toolgate-Graph", "support-bot")
		req.Header.Set("X-Toolgate-Node", "triage")
		req.Header.Set("X-Toolgate-Run", "cred-run")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "[REDACTED:credential]") {
			t.Errorf("passthrough /%s: %d %s", p, resp.StatusCode, body)
		}
		leaks("the passthrough response of /"+p, string(body))
		for name, vs := range resp.Header {
			leaks("passthrough response header "+name, strings.Join(vs, ","))
		}
	}
	code, trail, errOut := runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", "cred-run")
	if code != 0 || !strings.Contains(trail, "echo_headers") {
		t.Fatalf("audit export: exit %d: %s%s", code, trail, errOut)
	}
	leaks("the audit trail", trail)
	leaks("the log", e.stderr.String())
}
