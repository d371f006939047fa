package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// maxErrorText bounds the upstream text an error message carries.
const maxErrorText = 2048

// Execute calls the upstream tool op.MCP names and returns its result as
// {"content": [...], "structuredContent": {...}, "isError": false}. It
// refuses, with nothing sent upstream, a tool that is not exposed: one the
// upstream does not list (unknown_tool), one whose definition differs from
// its pin (tool_definition_changed) or one not pinned or not usable
// (unknown_tool). An upstream that is down, a timeout or a lost connection
// is target_unavailable; an upstream error, an isError result and a result
// over max_result_bytes are target_error.
func (u *Upstream) Execute(ctx context.Context, op broker.Operation) (broker.Output, error) {
	if op.MCP == nil {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s runs MCP tool calls only", u.cfg.Name)
	}
	if op.Target != "" && op.Target != u.cfg.Name {
		return broker.Output{}, broker.Errorf(broker.CodeInternal, "an operation for target %s reached target %s", op.Target, u.cfg.Name)
	}
	entry, err := u.callable(op.MCP.Tool)
	if err != nil {
		return broker.Output{}, err
	}
	args := bytes.TrimSpace(op.MCP.Args)
	if len(args) == 0 {
		args = []byte("{}")
	}
	if args[0] != '{' || !json.Valid(args) {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidArguments, "the arguments of tool %s must be a JSON object", entry.Name)
	}
	s := u.sess.Load()
	if s == nil || s.isLost() {
		return broker.Output{}, broker.Errorf(broker.CodeTargetUnavailable, "upstream MCP server %s is not connected; toolgate is reconnecting", u.cfg.Name)
	}
	cctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	raw, err := s.callTool(cctx, op.MCP.Tool, args)
	if err != nil {
		return broker.Output{}, u.callError(ctx, entry.Name, err)
	}
	return u.output(entry, raw)
}

// callable returns the entry of an upstream tool that may be called now,
// or the refusal.
func (u *Upstream) callable(tool string) (Entry, error) {
	snap := u.snap.Load()
	if snap == nil {
		return Entry{}, broker.Errorf(broker.CodeTargetUnavailable, "upstream MCP server %s has not been reached yet, so its tools are unknown", u.cfg.Name)
	}
	e, ok := snap.Entry(tool)
	switch {
	case !ok:
		return e, broker.Errorf(broker.CodeUnknownTool, "upstream MCP server %s lists no tool %q", u.cfg.Name, tool)
	case e.State == StateExposed:
		return e, nil
	case e.State == StateChanged:
		return e, &broker.Error{Code: broker.CodeToolDefinitionChanged, Message: fmt.Sprintf("tool %s is quarantined: %s", e.Name, e.Reason)}
	}
	return e, broker.Errorf(broker.CodeUnknownTool, "tool %q of target %s is not exposed: %s", tool, u.cfg.Name, e.Reason)
}

// callError maps a failed call to its refusal. ctx is the caller's.
func (u *Upstream) callError(ctx context.Context, name string, err error) error {
	var rpc *rpcError
	var lost *lostError
	switch {
	case errors.Is(err, errTooLarge):
		return u.tooLarge(name, err)
	case errors.As(err, &rpc):
		return broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("upstream tool %s failed: %s", name, clip(rpc.Message)))
	case errors.As(err, &lost):
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("upstream MCP server %s is unavailable (%s); toolgate is reconnecting", u.cfg.Name, describe(lost.cause)))
	case ctx.Err() != nil:
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("the call to tool %s was cancelled before the upstream answered", name))
	case errors.Is(err, context.DeadlineExceeded):
		return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("upstream tool %s did not answer within %s", name, u.cfg.Timeout))
	}
	return broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("upstream MCP server %s is unavailable", u.cfg.Name))
}

// callResult is the part of a tools/call result toolgate passes on.
type callResult struct {
	Content           []json.RawMessage `json:"content"`
	StructuredContent json.RawMessage   `json:"structuredContent"`
	IsError           bool              `json:"isError"`
}

// output turns a tools/call result into the Output document, or an isError
// result into a target_error carrying its text. Structured content must
// match the tool's output schema, if it has one.
func (u *Upstream) output(e Entry, raw json.RawMessage) (broker.Output, error) {
	name := e.Name
	var r callResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return broker.Output{}, broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("upstream tool %s answered with something that is not a tool result", name))
	}
	for _, c := range r.Content {
		if t := bytes.TrimSpace(c); len(t) == 0 || t[0] != '{' {
			return broker.Output{}, broker.Errorf(broker.CodeTargetError, "upstream tool %s answered with a content block that is not an object", name)
		}
	}
	sc := bytes.TrimSpace(r.StructuredContent)
	if string(sc) == "null" {
		sc = nil
	}
	if len(sc) > 0 && sc[0] != '{' {
		return broker.Output{}, broker.Errorf(broker.CodeTargetError, "upstream tool %s answered with structuredContent that is not an object", name)
	}
	if r.IsError {
		return broker.Output{}, broker.Errorf(broker.CodeTargetError, "upstream tool %s reported an error: %s", name, errorText(r.Content))
	}
	if len(sc) > 0 && e.schemas != nil && e.Definition != nil && e.Definition.OutputSchema != nil {
		if err := validateOutput(e.schemas, sc); err != nil {
			return broker.Output{}, broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("upstream tool %s answered with structuredContent that does not match its output schema", name))
		}
	}
	var b bytes.Buffer
	b.Grow(len(raw) + 32)
	b.WriteString(`{"content":[`)
	for i, c := range r.Content {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(structuredText(bytes.TrimSpace(c), sc))
	}
	b.WriteByte(']')
	if len(sc) > 0 {
		b.WriteString(`,"structuredContent":`)
		b.Write(sc)
	}
	b.WriteString(`,"isError":false}`)
	return broker.Output{Value: b.Bytes(), Bytes: b.Len()}, nil
}

// structuredText returns a content block as it goes into the result
// document: a text block whose text is the structured content as JSON (the
// unstructured twin MCP asks servers to send) carries it as a JSON object,
// {"type":"text","text":{...}}, so that the tool's JSON paths mask it as
// they mask structuredContent; the MCP door sends it as text again. Any
// other block is returned as it came.
func structuredText(block, sc json.RawMessage) json.RawMessage {
	if len(sc) == 0 || !bytes.Contains(block, []byte(`"text"`)) {
		return block
	}
	var tb struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(block, &tb) != nil || tb.Type != "text" || !sameJSON([]byte(tb.Text), sc) {
		return block
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(block, &fields) != nil {
		return block
	}
	fields["text"] = sc
	out, err := json.Marshal(fields)
	if err != nil {
		return block
	}
	return out
}

// sameJSON reports whether a and b are the same JSON object, numbers
// compared as written.
func sameJSON(a, b []byte) bool {
	if t := bytes.TrimSpace(a); len(t) == 0 || t[0] != '{' {
		return false
	}
	decode := func(raw []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil && !dec.More()
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}

// tooLarge is the refusal of a result over max_result_bytes: target_error
// whose Field names the setting, so a client can tell it from other
// upstream failures. Nothing of the result is kept.
func (u *Upstream) tooLarge(name string, err error) error {
	field := "targets." + u.cfg.Name + ".max_result_bytes"
	msg := fmt.Sprintf("the result of tool %s exceeds max_result_bytes (%d bytes) and was withheld; the call may have run upstream", name, u.cfg.MaxResultBytes)
	return &broker.Error{Code: broker.CodeTargetError, Field: field, Message: msg, Cause: err,
		Problems: []broker.Problem{{Field: field, Message: fmt.Sprintf("the upstream's answer was larger than %d bytes; raise %s or ask for less", u.cfg.MaxResultBytes, field)}}}
}

// errorText joins the text blocks of an isError result, clipped.
func errorText(content []json.RawMessage) string {
	var parts []string
	for _, c := range content {
		var block struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(c, &block) == nil && block.Type == "text" && block.Text != "" {
			parts = append(parts, block.Text)
		}
	}
	if len(parts) == 0 {
		return "no text given"
	}
	return clip(strings.Join(parts, " "))
}

// clip cuts upstream text to maxErrorText bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// validateOutput checks structured content against the output schema,
// numbers kept exact.
func validateOutput(s Schemas, sc json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(sc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return s.ValidateOutput(v)
}
