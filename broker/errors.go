package broker

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable reason for a refusal or failure. Codes
// are part of the external contract: clients switch on them.
type Code string

// The stable error codes (DESIGN §10).
const (
	CodeUnauthenticated  Code = "unauthenticated"
	CodeForbidden        Code = "forbidden"
	CodeInvalidArguments Code = "invalid_arguments"
	CodeInvalidRequest   Code = "invalid_request"
	CodeUnknownTool      Code = "unknown_tool"
	CodeNotFound         Code = "not_found"
	CodePayloadTooLarge  Code = "payload_too_large"
	CodeApprovalPending  Code = "approval_pending"
	CodeApprovalDenied   Code = "approval_denied"
	CodeApprovalExpired  Code = "approval_expired"
	// CodeApprovalStale refuses a call whose approval no longer holds: it
	// was given under a rule that has since changed, or the approved run
	// would affect other rows than its preview showed (rolled back). The
	// call did not run; calling again requests a new approval.
	CodeApprovalStale     Code = "approval_stale"
	CodeBudgetExceeded    Code = "budget_exceeded"
	CodeTargetUnavailable Code = "target_unavailable"
	CodeTargetError       Code = "target_error"
	CodeTimeout           Code = "timeout"
	CodeAuditUnavailable  Code = "audit_unavailable"
	CodeUnavailable       Code = "unavailable"
	CodeInternal          Code = "internal"
	// CodeOwnerDisabled refuses a credential, grant, graph or approval
	// request whose accountable principal (the caller itself, a key's owner
	// or creator, a grant's minter, every owner of a graph) is disabled.
	CodeOwnerDisabled Code = "owner_disabled"
)

// The codes of a tool call or listing whose caller does not say, or
// misnames, the graph and node it acts as.
const (
	// CodeUnidentified: an API key or OIDC caller sent no X-Toolgate-Graph
	// or X-Toolgate-Node (a grant token carries both). Field names the
	// first missing header, Problems each one.
	CodeUnidentified Code = "unidentified"
	// CodeUnknownGraph: X-Toolgate-Graph names a graph the configuration
	// does not declare.
	CodeUnknownGraph Code = "unknown_graph"
	// CodeUnknownNode: X-Toolgate-Node (or a grant's node) matches no node
	// of its graph.
	CodeUnknownNode Code = "unknown_node"
)

// The codes of effect previews.
const (
	// CodePreviewUnavailable: a call's effect cannot be previewed (the
	// tool opts out, or the statement cannot run in a rolled-back
	// transaction without effects of its own).
	CodePreviewUnavailable Code = "preview_unavailable"
)

// CodeHeadersTooLarge refuses a request whose header fields are over the
// listener's cap (limits.max_header_bytes); nothing ran.
const CodeHeadersTooLarge Code = "headers_too_large"

// CodeToolDefinitionChanged refuses a call to an upstream MCP tool whose
// definition no longer matches its pin in the tools lock file.
const CodeToolDefinitionChanged Code = "tool_definition_changed"

// Error is a refusal or failure with a stable code and a message that is safe
// to show an agent: it never contains a secret, a token or an unmasked value.
// The wrapped cause is for logs only (after masking) and is never shown.
type Error struct {
	Code    Code
	Message string
	// Field names the offending input (an argument, a config path, a header)
	// when there is one.
	Field string
	// Problems lists every offending input when a check found several
	// (e.g. each argument that breaks the input schema, up to a cap);
	// Field is then the first one's and Message lists them all.
	Problems []Problem
	// Cause is the underlying error. It is not part of Error() and is never
	// sent to a client.
	Cause error

	// incident is the id an internal failure was logged under, once
	// reported (finish.go).
	incident string
}

// Problem is one offending input of a refusal: where (an argument as a
// JSON pointer, a config path, a header) and what is wrong, safe to show.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error returns "code: message", safe to show.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error with the same code, so
// errors.Is(err, broker.ErrForbidden) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinel values for errors.Is comparisons by code.
var (
	ErrUnauthenticated   = &Error{Code: CodeUnauthenticated}
	ErrForbidden         = &Error{Code: CodeForbidden}
	ErrInvalidArguments  = &Error{Code: CodeInvalidArguments}
	ErrUnknownTool       = &Error{Code: CodeUnknownTool}
	ErrTargetUnavailable = &Error{Code: CodeTargetUnavailable}
	ErrAuditUnavailable  = &Error{Code: CodeAuditUnavailable}
	ErrBudgetExceeded    = &Error{Code: CodeBudgetExceeded}
)

// ErrApprovalStale matches CodeApprovalStale with errors.Is.
var ErrApprovalStale = &Error{Code: CodeApprovalStale}

// Errorf returns an *Error with a formatted safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with a safe message and a private cause.
func Wrap(code Code, cause error, message string) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// AsError converts any error into an *Error safe to show. An error that is
// already an *Error is returned as is; anything else becomes an internal
// error whose message carries only an id. The id is returned so the caller
// can log the cause under it. The pipeline's answers never need it: the
// broker reports every internal failure it returns (Broker.Report).
func AsError(err error) (e *Error, incidentID string) {
	if err == nil {
		return nil, ""
	}
	if errors.As(err, &e) {
		return e, ""
	}
	incidentID = newIncidentID()
	return &Error{Code: CodeInternal, Message: "internal error (incident " + incidentID + ")", Cause: err}, incidentID
}

// Incident is the id an internal failure was logged under, "" when it was
// not reported (or is not internal).
func (e *Error) Incident() string { return e.incident }

// CodeOf returns the code of err, CodeInternal for a foreign error and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
