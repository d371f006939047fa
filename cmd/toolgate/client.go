package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// serverFlags are the flags of the verbs that act on a running server
// (grants, approvals): --server and --token, defaulting to TOOLGATE_SERVER
// and TOOLGATE_TOKEN.
type serverFlags struct {
	server  string
	token   string
	timeout time.Duration
}

// DefaultServer is the server a client verb talks to when neither --server
// nor TOOLGATE_SERVER names one.
const DefaultServer = "http://127.0.0.1:8080"

// register adds the flags to cmd; whose says whose token the verb needs.
func (f *serverFlags) register(cmd *cobra.Command, whose string) {
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "toolgate server URL (default $TOOLGATE_SERVER or "+DefaultServer+")")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "bearer token: "+whose+" (default $TOOLGATE_TOKEN; prefer the variable, flags show in ps)")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", 30*time.Second, "request timeout")
}

// client returns the API client for the flags, or an error naming what is
// missing.
func (f *serverFlags) client(cmd *cobra.Command) (*apiClient, error) {
	server, token := f.server, f.token
	if server == "" {
		server = os.Getenv("TOOLGATE_SERVER")
	}
	if server == "" {
		server = DefaultServer
	}
	if token == "" {
		token = os.Getenv("TOOLGATE_TOKEN")
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fail(2, "--server must be an http(s) URL like %s", DefaultServer)
	}
	if token == "" {
		return nil, fail(2, "a token is required: set TOOLGATE_TOKEN or pass --token")
	}
	return &apiClient{base: strings.TrimRight(server, "/"), token: token, hc: &http.Client{Timeout: f.timeout}}, nil
}

// request sends method path with body (when not nil) to the server the
// flags name and decodes the answer into out (when not nil). With asJSON it
// also writes the answer as is to cmd's output and reports printed, so the
// verb prints nothing else.
func (f *serverFlags) request(cmd *cobra.Command, method, path string, body, out any, asJSON bool) (printed bool, err error) {
	c, err := f.client(cmd)
	if err != nil {
		return false, err
	}
	var raw []byte
	if err := c.do(cmd.Context(), method, path, body, out, &raw); err != nil {
		return false, err
	}
	if !asJSON {
		return false, nil
	}
	_, err = cmd.OutOrStdout().Write(raw)
	return true, err
}

// send is request for a verb that never prints the server's answer.
func (f *serverFlags) send(cmd *cobra.Command, method, path string, body, out any) error {
	_, err := f.request(cmd, method, path, body, out, false)
	return err
}

// apiClient calls a running toolgate's HTTP API. It never prints the token.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

// do sends method path with body (JSON-encoded when not nil) and decodes a
// 2xx answer into out (when not nil). A refusal is returned as an
// exitError{1} reading "code: message"; an unreachable server likewise.
// raw, when not nil, receives the answer body as is.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any, raw *[]byte) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail(1, "unavailable: cannot reach %s: %v", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fail(1, "unavailable: reading the answer of %s: %v", c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return fail(1, "http_%d: %s %s answered %s", resp.StatusCode, method, path, resp.Status)
		}
		msg := e.Error.Message
		if e.Error.Field != "" && !strings.Contains(msg, e.Error.Field) {
			msg += " (field " + e.Error.Field + ")"
		}
		return fail(1, "%s: %s", e.Error.Code, msg)
	}
	if raw != nil {
		*raw = b
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fail(1, "internal: %s %s answered something that is not the expected JSON", method, path)
		}
	}
	return nil
}
