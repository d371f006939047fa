package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/approvals/slack"
	"github.com/toolgate/toolgate/approvals/webhook"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
)

// authParts are the authenticator and the services beside it.
type authParts struct {
	authn    *auth.Authenticator
	grants   *auth.Grants
	keyStore *auth.SQLKeyStore
	usage    *auth.Usage
}

// openAuth builds the authenticator (API keys from the config and the
// store, OIDC, workload identities, grant tokens) and the grant service on
// the store. The grant service records grant_minted and grant_revoked
// events with rec.
func openAuth(cfg *config.Config, store *db.DB, pol auth.GraphInfo, rec broker.Recorder, now func() time.Time, log *zap.Logger) (authParts, error) {
	grantStore, err := auth.NewSQLGrantStore(store)
	if err != nil {
		return authParts{}, fmt.Errorf("grant store: %w", err)
	}
	keyStore, err := auth.NewSQLKeyStore(store)
	if err != nil {
		return authParts{}, fmt.Errorf("key store: %w", err)
	}
	usage := auth.NewUsage(keyStore, 0, log)
	acfg := auth.Config{Grants: grantStore, Keys: keyStore, Usage: usage, Logger: log, Now: now}
	if acfg.APIKeys, err = configuredKeys(cfg); err != nil {
		return authParts{}, err
	}
	if acfg.Workload, err = workloadIssuers(cfg); err != nil {
		return authParts{}, err
	}
	if o := cfg.Auth.OIDC; o != nil {
		acfg.OIDC = &auth.OIDCConfig{Issuer: o.Issuer, Audience: o.Audience, GroupsClaim: o.GroupsClaim, Algorithms: o.Algorithms, AssumeEmailVerified: o.AssumeEmailVerified}
	}
	authn, err := auth.New(acfg)
	if err != nil {
		return authParts{}, fmt.Errorf("auth: %w", err)
	}
	grants, err := auth.NewGrants(auth.GrantsConfig{Store: grantStore, Graphs: pol, MaxTTL: cfg.Auth.GrantMaxTTL.D(), Recorder: rec, Logger: log, Now: now})
	if err != nil {
		return authParts{}, fmt.Errorf("grants: %w", err)
	}
	return authParts{authn: authn, grants: grants, keyStore: keyStore, usage: usage}, nil
}

// openApprovals builds the approval service, its notifier (LISTEN/NOTIFY on
// a Postgres store, in-process on SQLite), the Slack announcer and the
// approvals.on_decision webhook (which wraps Slack), and
// starts their background loops.
func openApprovals(bg context.Context, a *app, store *db.DB, masker approvals.Masker, rec broker.Recorder) (*approvals.Service, *slack.Notifier, error) {
	cfg, log := a.cfg, a.log
	var notifier approvals.Notifier
	if store.Driver() == db.DriverPostgres {
		pn, err := approvals.NewPGNotifier(store, log)
		if err != nil {
			return nil, nil, fmt.Errorf("approval notifier: %w", err)
		}
		a.background(bg, "approval-notifier", pn.Listen)
		notifier = pn
	}
	astore, err := approvals.NewStore(store)
	if err != nil {
		return nil, nil, fmt.Errorf("approval store: %w", err)
	}
	acfg := approvals.Config{
		Store: astore, Notifier: notifier, Masker: masker, Recorder: rec,
		Timeout: cfg.Approvals.Timeout.D(), Wait: cfg.Approvals.Wait.D(), StaleAfter: cfg.Approvals.StaleAfter.D(), Logger: log, Now: a.now,
	}
	var sn *slack.Notifier
	if s := cfg.Approvals.Slack; s != nil {
		sn, err = slack.New(slack.Config{Mode: s.Mode, BotToken: s.BotToken, AppToken: s.AppToken, SigningSecret: s.SigningSecret, Channel: s.Channel, APIURL: s.APIURL,
			TeamID: s.TeamID, EnterpriseID: s.EnterpriseID, AppID: s.AppID, Users: s.Users, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("slack: %w", err)
		}
		acfg.Announcer = sn
	}
	if d := cfg.Approvals.OnDecision; d != nil {
		wh, err := webhook.New(webhook.Config{URL: d.URL, Secret: d.Secret, Next: acfg.Announcer, Masker: masker, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("approvals.on_decision: %w", err)
		}
		acfg.Announcer = wh
		a.background(bg, "approval-webhook", wh.Run)
	}
	svc, err := approvals.New(acfg)
	if err != nil {
		return nil, nil, fmt.Errorf("approvals: %w", err)
	}
	a.background(bg, "approval-sweeper", svc.Run)
	return svc, sn, nil
}
