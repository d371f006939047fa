package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	bhttp "github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/principals"
	"github.com/toolgate/toolgate/broker/scim"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
)

// offboarding is what keys, owners and offboarding need at run time.
type offboarding struct {
	keyStore *auth.SQLKeyStore
	keys     *auth.Keys
	svc      *principals.Service
}

// configuredKeys are the config file's API keys as auth takes them.
func configuredKeys(cfg *config.Config) ([]auth.APIKey, error) {
	out := make([]auth.APIKey, 0, len(cfg.Auth.APIKeys))
	for i, k := range cfg.Auth.APIKeys {
		exp, err := k.ExpiresAt()
		if err != nil {
			return nil, fmt.Errorf("auth.api_keys[%d]: %w", i, err)
		}
		out = append(out, auth.APIKey{Name: k.Name, SHA256: k.SHA256, Owner: broker.PrincipalName(k.Owner), Expires: exp})
	}
	return out, nil
}

// workloadIssuers are auth.workload as auth takes them; a ca_file is
// added to the system's roots for that issuer only.
func workloadIssuers(cfg *config.Config) ([]auth.WorkloadConfig, error) {
	var out []auth.WorkloadConfig
	for _, name := range slices.Sorted(maps.Keys(cfg.Auth.Workload)) {
		w := cfg.Auth.Workload[name]
		wc := auth.WorkloadConfig{Name: name, Issuer: w.Issuer, Audience: w.Audience, Algorithms: w.Algorithms, MaxLifetime: w.MaxLifetime.D(), Claims: w.Claims}
		if w.CAFile != "" {
			pem, err := os.ReadFile(w.CAFile)
			if err != nil {
				return nil, fmt.Errorf("auth.workload.%s.ca_file: %w", name, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("auth.workload.%s.ca_file: no PEM certificate in %s", name, w.CAFile)
			}
			wc.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		}
		out = append(out, wc)
	}
	return out, nil
}

// openOffboarding builds the principals service on the store: keys it
// suspends, grants it revokes, approvals it refuses. It reads the state
// once before the server starts, so no caller is admitted unchecked, and
// then every 500ms in the background.
func (a *app) openOffboarding(bg context.Context, keyStore *auth.SQLKeyStore, rec broker.Recorder) error {
	cfg := a.cfg
	pstore, err := principals.NewStore(a.store)
	if err != nil {
		return err
	}
	configured, err := configuredKeys(cfg)
	if err != nil {
		return err
	}
	svc, err := principals.New(principals.Config{
		Store: pstore, Keys: keyDirectory{configured: configured, store: keyStore, now: a.now},
		Grants: a.grants, Approvals: a.approver, Revoked: keyStore, Recorder: rec,
		GraphOwners: livePolicy{a}.Owners,
		Admins:      cfg.Auth.Admins, Logger: a.log,
	})
	if err != nil {
		return err
	}
	if err := svc.Refresh(bg); err != nil {
		return fmt.Errorf("read disabled principals: %w", err)
	}
	a.background(bg, "principals", svc.Run)
	keys, err := auth.NewKeys(auth.KeysConfig{Store: keyStore, Configured: configured, Admins: cfg.Auth.Admins,
		MaxTTL: cfg.Auth.Keys.MaxTTL.D(), Disabled: svc.Suspended, Usage: keyStore.LastUsed, Recorder: rec, Logger: a.log})
	if err != nil {
		return err
	}
	a.off = &offboarding{keyStore: keyStore, keys: keys, svc: svc}
	return nil
}

// mountOffboarding serves /v1/keys, /v1/principals, /v1/access/review and,
// with auth.scim, /scim/v2/.
func (a *app) mountOffboarding(mux *http.ServeMux, p broker.Pipeline, opts bhttp.Options) error {
	keys := bhttp.NewKeys(p, keyService{a.off}, opts)
	mux.Handle("/v1/keys", keys)
	mux.Handle("/v1/keys/", keys)
	ps := bhttp.NewPrincipals(p, principalService{a}, opts)
	mux.Handle("/v1/principals", ps)
	mux.Handle("/v1/principals/", ps)
	mux.Handle("/v1/access/", ps)
	if s := a.cfg.Auth.SCIM; s != nil {
		h, err := scim.New(scimDirectory{a.off.svc}, scim.Options{Token: s.Token, BaseURL: a.cfg.PublicURL + "/scim/v2", Logger: a.log.Named("scim"), Reporter: a.broker})
		if err != nil {
			return fmt.Errorf("auth.scim: %w", err)
		}
		mux.Handle("/scim/v2/", h)
	}
	return nil
}

// keyDirectory answers which keys principals own or made.
type keyDirectory struct {
	configured []auth.APIKey
	store      *auth.SQLKeyStore
	now        func() time.Time
}

var _ principals.KeyDirectory = keyDirectory{}

func (d keyDirectory) KeysOf(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range d.configured {
		if k.Owner != "" && slices.Contains(names, k.Owner) {
			out["key:"+k.Name] = k.Owner
		}
	}
	stored, err := d.store.KeysOf(ctx, names)
	if err != nil {
		return nil, err
	}
	now := d.now()
	for _, k := range stored {
		if !k.RevokedAt.IsZero() || !now.Before(k.ExpiresAt) {
			continue
		}
		who := k.Owner
		if !slices.Contains(names, who) {
			who = k.CreatedBy
		}
		out["key:"+k.Name] = who
	}
	return out, nil
}

// keyService adapts auth.Keys to the keys API; a revocation also ends the
// key's open sessions here at once.
type keyService struct{ o *offboarding }

var _ bhttp.KeyService = keyService{}

func (s keyService) CreateKey(ctx context.Context, p broker.Principal, req bhttp.KeyRequest) (string, broker.KeyInfo, error) {
	k, err := s.o.keys.Create(ctx, p, auth.KeyRequest{Name: req.Name, Owner: req.Owner, ExpiresIn: req.ExpiresIn})
	if err != nil {
		return "", broker.KeyInfo{}, err
	}
	return k.Key, k.Info, nil
}

func (s keyService) Keys(ctx context.Context, p broker.Principal) ([]broker.KeyInfo, error) {
	return s.o.keys.List(ctx, p)
}

func (s keyService) RevokeKey(ctx context.Context, p broker.Principal, name string) error {
	if err := s.o.keys.Revoke(ctx, p, name); err != nil {
		return err
	}
	s.o.svc.KeyRevoked(ctx, name)
	return nil
}

// principalService adapts the principals service and the access review
// to the principals API.
type principalService struct{ a *app }

var _ bhttp.PrincipalService = principalService{}

func (s principalService) DisablePrincipal(ctx context.Context, p broker.Principal, principal, reason string) (any, error) {
	return s.a.off.svc.Disable(ctx, p, principal, reason)
}

func (s principalService) EnablePrincipal(ctx context.Context, p broker.Principal, principal string) (any, error) {
	return s.a.off.svc.Enable(ctx, p, principal)
}

func (s principalService) PrincipalStates(ctx context.Context, p broker.Principal) (any, error) {
	st, err := s.a.off.svc.States(ctx, p)
	if st == nil {
		st = []principals.State{}
	}
	return st, err
}

func (s principalService) AccessReview(ctx context.Context, p broker.Principal, stale time.Duration) (any, error) {
	cfg := s.a.cfg
	if !auth.IsAdmin(p, cfg.Auth.Admins) && !auth.IsAdmin(p, cfg.Auth.Auditors) {
		return nil, broker.Errorf(broker.CodeForbidden, "principal %s is neither an admin (auth.admins) nor an auditor (auth.auditors) and may not read the access review", p.Subject)
	}
	in, err := reviewInput(ctx, cfg, s.a.store, s.a.now(), stale)
	if err != nil {
		return nil, broker.Wrap(broker.CodeUnavailable, err, "the store could not be read for the access review")
	}
	return principals.Review(in), nil
}

// reviewInput reads what an access review needs from the configuration and
// the store.
func reviewInput(ctx context.Context, cfg *config.Config, store *db.DB, now time.Time, stale time.Duration) (principals.ReviewInput, error) {
	in := principals.ReviewInput{Now: now, Stale: stale, Admins: cfg.Auth.Admins, Auditors: cfg.Auth.Auditors, Disabled: map[string]time.Time{}}
	for _, name := range slices.Sorted(maps.Keys(cfg.Graphs)) {
		g := cfg.Graphs[name]
		in.Graphs = append(in.Graphs, principals.ReviewGraph{Name: name, Principals: g.Principals, Owners: g.Owners})
		in.Approvers = append(in.Approvers, approverRoles("graphs."+name+".rules", g.Rules)...)
		for _, n := range slices.Sorted(maps.Keys(g.Nodes)) {
			in.Approvers = append(in.Approvers, approverRoles("graphs."+name+".nodes."+n+".rules", g.Nodes[n].Rules)...)
		}
	}
	keyStore, err := auth.NewSQLKeyStore(store)
	if err != nil {
		return in, err
	}
	if err := reviewKeys(ctx, cfg, keyStore, &in); err != nil {
		return in, err
	}
	grantStore, err := auth.NewSQLGrantStore(store)
	if err != nil {
		return in, err
	}
	live, err := grantStore.LiveGrants(ctx, now)
	if err != nil {
		return in, err
	}
	for _, g := range live {
		in.Grants = append(in.Grants, principals.ReviewGrant{ID: g.ID, Graph: g.Graph, Run: g.Run, Nodes: g.Nodes, MintedBy: g.Minter.Subject, ExpiresAt: g.ExpiresAt})
	}
	pstore, err := principals.NewStore(store)
	if err != nil {
		return in, err
	}
	states, err := pstore.States(ctx)
	for _, st := range states {
		if st.Disabled() {
			in.Disabled[st.Principal] = st.ChangedAt
		}
	}
	return in, err
}

func approverRoles(path string, rules []config.Rule) []principals.ApproverRole {
	var out []principals.ApproverRole
	for i, r := range rules {
		for _, a := range r.Approvers {
			out = append(out, principals.ApproverRole{Principal: a, Rule: fmt.Sprintf("%s[%d]", path, i)})
		}
	}
	return out
}

func reviewKeys(ctx context.Context, cfg *config.Config, ks *auth.SQLKeyStore, in *principals.ReviewInput) error {
	used, err := ks.LastUsed(ctx)
	if err != nil {
		return err
	}
	configured, err := configuredKeys(cfg)
	if err != nil {
		return err
	}
	for _, k := range configured {
		in.Keys = append(in.Keys, principals.ReviewKey{Name: k.Name, Source: "config", Owner: k.Owner, ExpiresAt: k.Expires, LastUsed: used[k.Name]})
	}
	stored, err := ks.Keys(ctx)
	for _, k := range stored {
		in.Keys = append(in.Keys, principals.ReviewKey{Name: k.Name, Source: "api", Owner: k.Owner, CreatedBy: k.CreatedBy,
			CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsed: used[k.Name]})
	}
	return err
}

// scimDirectory adapts the principals service to the SCIM front door.
type scimDirectory struct{ s *principals.Service }

var _ scim.Directory = scimDirectory{}

func toSCIM(u principals.SCIMUser) scim.User {
	return scim.User{ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, DisplayName: u.DisplayName, Emails: u.Emails,
		Active: u.Active, Created: u.CreatedAt, LastModified: u.UpdatedAt}
}

func fromSCIM(u scim.User) principals.SCIMUser {
	return principals.SCIMUser{ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, DisplayName: u.DisplayName, Emails: u.Emails, Active: u.Active}
}

func toSCIMs(us []principals.SCIMUser) []scim.User {
	out := make([]scim.User, 0, len(us))
	for _, u := range us {
		out = append(out, toSCIM(u))
	}
	return out
}

func (d scimDirectory) CreateUser(ctx context.Context, u scim.User) (scim.User, error) {
	got, err := d.s.CreateUser(ctx, fromSCIM(u))
	return toSCIM(got), err
}

func (d scimDirectory) User(ctx context.Context, id string) (scim.User, error) {
	u, err := d.s.User(ctx, id)
	return toSCIM(u), err
}

func (d scimDirectory) FindUsers(ctx context.Context, attr, value string) ([]scim.User, error) {
	us, err := d.s.FindUsers(ctx, attr, value)
	return toSCIMs(us), err
}

func (d scimDirectory) Users(ctx context.Context, offset, limit int) ([]scim.User, int, error) {
	us, total, err := d.s.Users(ctx, offset, limit)
	return toSCIMs(us), total, err
}

func (d scimDirectory) ReplaceUser(ctx context.Context, u scim.User) (scim.User, error) {
	got, err := d.s.ReplaceUser(ctx, fromSCIM(u))
	return toSCIM(got), err
}

func (d scimDirectory) DeleteUser(ctx context.Context, id string) error {
	return d.s.DeleteUser(ctx, id)
}

// slackDecider refuses the Slack votes of suspended approvers: Slack users
// map to principals without broker.Identify, so the offboarding check is
// made here.
type slackDecider struct {
	slack.Decider
	svc *principals.Service
}

var _ slack.Decider = slackDecider{}

func (d slackDecider) Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error) {
	if err := d.svc.Check(broker.Caller{Principal: approver}); err != nil {
		return "", err
	}
	return d.Decider.Decide(ctx, id, approver, approve, reason, channel)
}
