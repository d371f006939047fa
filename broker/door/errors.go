package door

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/toolgate/toolgate/broker"
)

// Status is the HTTP status a front door answers with for a code.
func Status(c broker.Code) int {
	switch c {
	case broker.CodeUnauthenticated:
		return http.StatusUnauthorized
	case broker.CodeForbidden, broker.CodeApprovalDenied, broker.CodeOwnerDisabled:
		return http.StatusForbidden
	case broker.CodeInvalidArguments, broker.CodeInvalidRequest, broker.CodeUnidentified:
		return http.StatusBadRequest
	case broker.CodeUnknownTool, broker.CodeNotFound, broker.CodeUnknownGraph, broker.CodeUnknownNode:
		return http.StatusNotFound
	case broker.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case broker.CodeHeadersTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	case broker.CodeApprovalPending:
		return http.StatusAccepted
	case broker.CodeApprovalExpired:
		return http.StatusGone
	case broker.CodeApprovalStale, broker.CodeToolDefinitionChanged:
		return http.StatusConflict
	case broker.CodePreviewUnavailable:
		return http.StatusUnprocessableEntity
	case broker.CodeBudgetExceeded:
		return http.StatusTooManyRequests
	case broker.CodeTargetUnavailable, broker.CodeAuditUnavailable, broker.CodeUnavailable:
		return http.StatusServiceUnavailable
	case broker.CodeTargetError:
		return http.StatusBadGateway
	case broker.CodeTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON error envelope: {"error": {"code", "message",
// "field"?, "problems"?: [{"field", "message"}]}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the object inside ErrorBody.
type ErrorDetail struct {
	Code     broker.Code      `json:"code"`
	Message  string           `json:"message"`
	Field    string           `json:"field,omitempty"`
	Problems []broker.Problem `json:"problems,omitempty"`
}

// WriteError writes err as the JSON error envelope with the status of its
// code. An unauthenticated error also gets the WWW-Authenticate challenge
// pointing at resourceMetadataURL. The cause is never written. err should
// be what the broker answered or reported (Reporter): an internal failure
// then names the incident it was logged under. WriteError logs nothing.
func WriteError(w http.ResponseWriter, err error, resourceMetadataURL string) {
	e, _ := broker.AsError(err)
	if e == nil {
		e = broker.Errorf(broker.CodeInternal, "internal error")
	}
	if e.Code == broker.CodeUnauthenticated && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", Challenge(resourceMetadataURL, ""))
	}
	WriteJSON(w, Status(e.Code), ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message, Field: e.Field, Problems: e.Problems}})
}

// Challenge returns the WWW-Authenticate value for a 401 (RFC 6750,
// RFC 9728): `Bearer resource_metadata="<url>"`, plus `error="<bearerError>"`
// when bearerError is not empty ("invalid_token" when a token was presented
// and refused, "invalid_request" when the Authorization header was
// malformed).
func Challenge(resourceMetadataURL, bearerError string) string {
	v := "Bearer"
	sep := " "
	if resourceMetadataURL != "" {
		v += sep + fmt.Sprintf("resource_metadata=%q", resourceMetadataURL)
		sep = ", "
	}
	if bearerError != "" {
		v += sep + fmt.Sprintf("error=%q", bearerError)
	}
	return v
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
