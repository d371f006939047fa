package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// userJSON is a SCIM user as providers send it; attributes toolgate does
// not keep (name parts, phone numbers, extensions) are ignored.
type userJSON struct {
	UserName    *string     `json:"userName"`
	ExternalID  *string     `json:"externalId"`
	DisplayName *string     `json:"displayName"`
	Name        *nameJSON   `json:"name"`
	Emails      []emailJSON `json:"emails"`
	Active      *flexBool   `json:"active"`
}

type nameJSON struct {
	Formatted  string `json:"formatted"`
	GivenName  string `json:"givenName"`
	FamilyName string `json:"familyName"`
}

type emailJSON struct {
	Value   string `json:"value"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// flexBool is a boolean sent as true/false or as the strings "True" and
// "False" (Entra ID sends the latter).
type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	var v bool
	if err := json.Unmarshal(raw, &v); err == nil {
		*b = flexBool(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			*b = true
			return nil
		case "false":
			*b = false
			return nil
		}
	}
	return errors.New("active must be true or false")
}

// readUser decodes a request body as a SCIM user.
func readUser(r *http.Request) (userJSON, error) {
	var in userJSON
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return in, broker.Errorf(broker.CodePayloadTooLarge, "the SCIM request body is over 64 KiB")
		}
		return in, broker.Errorf(broker.CodeInvalidRequest, "the body must be a SCIM User: %s", decodeProblem(err))
	}
	if in.UserName == nil || strings.TrimSpace(*in.UserName) == "" {
		return in, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: "userName is required"}
	}
	return in, nil
}

func decodeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("attribute %q has the wrong type", te.Field)
	}
	if strings.Contains(err.Error(), "active must be") {
		return "active must be true or false"
	}
	return "malformed JSON"
}

// user applies the decoded attributes over base.
func (in userJSON) user(base User) User {
	u := base
	if in.UserName != nil {
		u.UserName = strings.TrimSpace(*in.UserName)
	}
	if in.ExternalID != nil {
		u.ExternalID = *in.ExternalID
	}
	if in.DisplayName != nil {
		u.DisplayName = *in.DisplayName
	} else if in.Name != nil {
		u.DisplayName = displayName(*in.Name)
	}
	if in.Emails != nil {
		u.Emails = emailValues(in.Emails)
	}
	if in.Active != nil {
		u.Active = bool(*in.Active)
	}
	return u
}

func displayName(n nameJSON) string {
	if n.Formatted != "" {
		return n.Formatted
	}
	return strings.TrimSpace(n.GivenName + " " + n.FamilyName)
}

func emailValues(es []emailJSON) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		if v := strings.TrimSpace(e.Value); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// resource is a user as SCIM answers it.
func (h *handler) resource(u User) map[string]any {
	emails := make([]emailJSON, 0, len(u.Emails))
	for i, e := range u.Emails {
		emails = append(emails, emailJSON{Value: e, Type: "work", Primary: i == 0})
	}
	res := map[string]any{
		"schemas": []string{userSchema}, "id": u.ID, "userName": u.UserName, "active": u.Active, "emails": emails,
		"meta": map[string]any{"resourceType": "User", "created": u.Created.UTC().Format(time.RFC3339),
			"lastModified": u.LastModified.UTC().Format(time.RFC3339), "location": h.base + "/Users/" + u.ID},
	}
	if u.ExternalID != "" {
		res["externalId"] = u.ExternalID
	}
	if u.DisplayName != "" {
		res["displayName"] = u.DisplayName
	}
	return res
}

// patchRequest is a SCIM PatchOp.
type patchRequest struct {
	Operations []patchOp `json:"Operations"`
}

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// apply applies one PATCH operation. Paths toolgate does not keep are
// accepted and ignored, as SCIM lets a service provider do.
func apply(u *User, op patchOp) error {
	kind := strings.ToLower(op.Op)
	if kind != "add" && kind != "replace" && kind != "remove" {
		return fmt.Errorf("op %q is not add, replace or remove", op.Op)
	}
	if op.Path == "" {
		if kind == "remove" {
			return errors.New("remove needs a path")
		}
		var in userJSON
		if err := json.Unmarshal(op.Value, &in); err != nil {
			return fmt.Errorf("value must be an object of attributes: %s", decodeProblem(err))
		}
		*u = in.user(*u)
		return nil
	}
	return applyPath(u, kind, op.Path, op.Value)
}

// applyPath applies an operation on one attribute path.
func applyPath(u *User, kind, path string, value json.RawMessage) error {
	p := strings.ToLower(path)
	str := func(dst *string) error {
		if kind == "remove" {
			*dst = ""
			return nil
		}
		if err := json.Unmarshal(value, dst); err != nil {
			return fmt.Errorf("%s must be a string", path)
		}
		return nil
	}
	switch {
	case p == "active":
		var b flexBool
		if kind == "remove" {
			return errors.New("active cannot be removed")
		}
		if err := json.Unmarshal(value, &b); err != nil {
			return errors.New("active must be true or false")
		}
		u.Active = bool(b)
	case p == "username":
		if kind == "remove" {
			return errors.New("userName cannot be removed")
		}
		return str(&u.UserName)
	case p == "externalid":
		return str(&u.ExternalID)
	case p == "displayname":
		return str(&u.DisplayName)
	case p == "emails":
		if kind == "remove" {
			u.Emails = nil
			return nil
		}
		var es []emailJSON
		if err := json.Unmarshal(value, &es); err != nil {
			return errors.New("emails must be a list of {value}")
		}
		u.Emails = emailValues(es)
	case strings.HasPrefix(p, "emails[") && strings.HasSuffix(p, "].value"):
		var v string
		if kind != "remove" {
			if err := json.Unmarshal(value, &v); err != nil {
				return fmt.Errorf("%s must be a string", path)
			}
		}
		u.Emails = nil
		if v = strings.TrimSpace(v); v != "" {
			u.Emails = []string{v}
		}
	}
	return nil
}
