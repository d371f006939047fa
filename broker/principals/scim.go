package principals

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// SCIMActor is who the audit trail names for changes the identity provider
// pushes over SCIM.
var SCIMActor = broker.Principal{Subject: "scim", Method: "scim_token", TokenID: "auth.scim.token"}

// PrincipalsOf returns the principal names a SCIM user maps to, in normal
// form: user:<userName> and user:<email> for each email.
func PrincipalsOf(userName string, emails []string) []string {
	names := []string{"user:" + strings.TrimSpace(userName)}
	for _, e := range emails {
		if e = strings.TrimSpace(e); e != "" {
			names = append(names, "user:"+e)
		}
	}
	return broker.PrincipalNames(names)
}

// CreateUser provisions a SCIM user; an inactive one disables its
// principals at once.
func (s *Service) CreateUser(ctx context.Context, u SCIMUser) (SCIMUser, error) {
	if strings.TrimSpace(u.UserName) == "" {
		return SCIMUser{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: "userName is required"}
	}
	u.ID = newUUID()
	u.Principals = PrincipalsOf(u.UserName, u.Emails)
	u.CreatedAt = s.cfg.Now().UTC().Truncate(1e6)
	u.UpdatedAt = u.CreatedAt
	switch err := s.cfg.Store.CreateUser(ctx, u); {
	case errors.Is(err, ErrUserExists):
		return SCIMUser{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: fmt.Sprintf("a user with userName %q exists", u.UserName), Cause: ErrUserExists}
	case err != nil:
		return SCIMUser{}, broker.Wrap(broker.CodeUnavailable, err, "the user could not be stored")
	}
	if !u.Active {
		if err := s.setSCIM(ctx, u, u.Principals, true); err != nil {
			return u, err
		}
	}
	return u, nil
}

// ReplaceUser stores a user's new attributes (SCIM PUT and PATCH). A change
// of active disables or enables its principals; names it no longer maps to
// are released.
func (s *Service) ReplaceUser(ctx context.Context, u SCIMUser) (SCIMUser, error) {
	old, err := s.User(ctx, u.ID)
	if err != nil {
		return SCIMUser{}, err
	}
	if strings.TrimSpace(u.UserName) == "" {
		return SCIMUser{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: "userName is required"}
	}
	u.Principals = PrincipalsOf(u.UserName, u.Emails)
	u.CreatedAt, u.UpdatedAt = old.CreatedAt, s.cfg.Now().UTC().Truncate(1e6)
	switch err := s.cfg.Store.UpdateUser(ctx, u); {
	case errors.Is(err, ErrUserExists):
		return SCIMUser{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: fmt.Sprintf("a user with userName %q exists", u.UserName), Cause: ErrUserExists}
	case err != nil:
		return SCIMUser{}, broker.Wrap(broker.CodeUnavailable, err, "the user could not be stored")
	}
	var released []string
	for _, n := range old.Principals {
		if !slices.Contains(u.Principals, n) {
			released = append(released, n)
		}
	}
	if !old.Active && len(released) > 0 {
		if err := s.setSCIM(ctx, u, released, false); err != nil {
			return u, err
		}
	}
	if !u.Active || old.Active != u.Active {
		if err := s.setSCIM(ctx, u, u.Principals, !u.Active); err != nil {
			return u, err
		}
	}
	return u, nil
}

// DeleteUser deprovisions a user: its principals are disabled (they stay
// disabled until an admin enables them) and the user is forgotten.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.setSCIM(ctx, u, u.Principals, true); err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteUser(ctx, id); err != nil && !errors.Is(err, ErrUserNotFound) {
		return broker.Wrap(broker.CodeUnavailable, err, "the user could not be deleted")
	}
	return nil
}

// User returns a SCIM user; not_found for an unknown id.
func (s *Service) User(ctx context.Context, id string) (SCIMUser, error) {
	u, err := s.cfg.Store.User(ctx, id)
	if errors.Is(err, ErrUserNotFound) {
		return SCIMUser{}, broker.Errorf(broker.CodeNotFound, "no user %q", id)
	}
	if err != nil {
		return SCIMUser{}, broker.Wrap(broker.CodeUnavailable, err, "the users could not be read")
	}
	return u, nil
}

// FindUsers returns the users whose attribute (userName or externalId)
// equals value.
func (s *Service) FindUsers(ctx context.Context, attr, value string) ([]SCIMUser, error) {
	col := map[string]string{"username": "user_name", "externalid": "external_id", "id": "id"}[strings.ToLower(attr)]
	if col == "" {
		return nil, &broker.Error{Code: broker.CodeInvalidRequest, Field: "filter", Message: fmt.Sprintf("filtering on %q is not supported; use userName, externalId or id", attr)}
	}
	us, err := s.cfg.Store.UserBy(ctx, col, value)
	if err != nil {
		return nil, broker.Wrap(broker.CodeUnavailable, err, "the users could not be read")
	}
	return us, nil
}

// Users returns a page of users (offset 0-based) and the total.
func (s *Service) Users(ctx context.Context, offset, limit int) ([]SCIMUser, int, error) {
	us, total, err := s.cfg.Store.Users(ctx, offset, limit)
	if err != nil {
		return nil, 0, broker.Wrap(broker.CodeUnavailable, err, "the users could not be read")
	}
	return us, total, nil
}

// setSCIM sets the SCIM flag of names and runs what follows.
func (s *Service) setSCIM(ctx context.Context, u SCIMUser, names []string, disabled bool) error {
	reason := "the identity provider deactivated SCIM user " + u.UserName
	if !disabled {
		reason = ""
	}
	changed, err := s.cfg.Store.set(ctx, scimFlag, names, disabled, u.ID, reason, SCIMActor.Subject, s.cfg.Now().UTC())
	if err != nil {
		return broker.Wrap(broker.CodeUnavailable, err, "the user's state could not be stored; try again")
	}
	if disabled {
		_, err = s.suspend(ctx, SCIMActor, "scim", reason, names, changed)
	} else {
		_, err = s.restore(ctx, SCIMActor, "scim", names, changed)
	}
	return err
}

// newUUID returns a random (version 4) UUID, the usual SCIM id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
