package broker

import "time"

// AuthMethod says how a principal proved who it is.
type AuthMethod string

// The authentication methods.
const (
	AuthAPIKey AuthMethod = "api_key"
	AuthOIDC   AuthMethod = "oidc"
	AuthGrant  AuthMethod = "grant"
	// AuthWorkload is a workload identity token (a Kubernetes service
	// account token, a CI OIDC token) from an issuer in auth.workload.
	AuthWorkload AuthMethod = "workload"
	// AuthLocal is the local stdio front door: the operator who started the
	// process, identified by configuration, not by a token.
	AuthLocal AuthMethod = "local"
)

// Principal is who is calling, as proven by a credential.
type Principal struct {
	// Subject is the principal name: "key:<name>", "user:<email|sub>",
	// "client:<azp>", "grant:<id>", "workload:<issuer>:<sub>".
	Subject string `json:"subject"`
	Email   string `json:"email,omitempty"`
	// IdPSubject is the OIDC "sub" claim: the person's stable name at the
	// identity provider, kept when Subject names the verified email, so
	// tokens of one person with and without an email claim are known as one
	// person ("user:<sub>" is among PersonalNames).
	IdPSubject string `json:"idp_subject,omitempty"`
	// Groups are the principal's groups, without the "group:" prefix.
	Groups []string   `json:"groups,omitempty"`
	Method AuthMethod `json:"auth_method"`
	// TokenID identifies the credential (API key name, JWT id, grant id),
	// never the credential itself.
	TokenID string `json:"token_id,omitempty"`
	// Client is the OAuth client the token was issued to (the OIDC "azp"
	// claim), "" when unknown.
	Client string `json:"client,omitempty"`
	// Minter is, for a grant token, the principal that minted the grant:
	// the human or service behind every call made with it. Nil for every
	// other credential.
	Minter *Principal `json:"minter,omitempty"`
}

// Names returns every principal name this principal answers to, in normal
// form (PrincipalName): its subject, "group:<g>" for each group,
// "user:<email>" when an email is known and "client:<azp>" when the OAuth
// client is known. A grant's minter is not among them: a grant token acts
// as its graph's node, not as the person who minted it.
func (p Principal) Names() []string {
	names := make([]string, 0, 3+len(p.Groups))
	names = append(names, p.Subject)
	if p.Email != "" {
		names = append(names, "user:"+p.Email)
	}
	for _, g := range p.Groups {
		names = append(names, "group:"+g)
	}
	if p.Client != "" {
		names = append(names, "client:"+p.Client)
	}
	return PrincipalNames(names)
}

// Requester is who asked: for a grant token the principal that minted the
// grant, for every other credential the principal itself.
func (p Principal) Requester() Principal {
	if p.Minter != nil {
		return *p.Minter
	}
	return p
}

// PersonalNames returns, in normal form, the names that identify this one
// human or service and its requester: the subject, the verified email and
// the OIDC subject ("user:<sub>", the name a token of the same person
// without a verified email has), and the same of the grant's minter. Groups and OAuth clients are shared
// by many people, so they are not personal. These are the names that may
// never approve a call this principal made.
func (p Principal) PersonalNames() []string {
	names := []string{p.Subject}
	if p.Email != "" {
		names = append(names, "user:"+p.Email)
	}
	if p.IdPSubject != "" {
		names = append(names, "user:"+p.IdPSubject)
	}
	if p.Minter != nil {
		names = append(names, p.Minter.PersonalNames()...)
	}
	return PrincipalNames(names)
}

// Binding is what a grant token fixes about its bearer: these values cannot
// be overridden by headers or arguments.
type Binding struct {
	GrantID   string         `json:"grant_id"`
	Graph     string         `json:"graph"`
	Node      string         `json:"node"`
	Run       string         `json:"run"`
	Thread    string         `json:"thread,omitempty"`
	Scope     map[string]any `json:"scope,omitempty"`
	ExpiresAt time.Time      `json:"expires_at"`
}

// Context is the LangGraph context of a call, as claimed by X-Toolgate-*
// headers (or fixed by a grant).
type Context struct {
	Graph string `json:"graph,omitempty"`
	// Node is the node path, e.g. "triage" or "supervisor/research".
	Node       string `json:"node,omitempty"`
	Run        string `json:"run,omitempty"`
	Thread     string `json:"thread,omitempty"`
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// Header names carrying the LangGraph context (DESIGN §3).
const (
	HeaderGraph      = "X-Toolgate-Graph"
	HeaderNode       = "X-Toolgate-Node"
	HeaderRun        = "X-Toolgate-Run"
	HeaderThread     = "X-Toolgate-Thread"
	HeaderToolCallID = "X-Toolgate-Tool-Call-Id"
	HeaderApproval   = "X-Toolgate-Approval"
)

// Credentials are what a front door extracted from a request, unverified.
type Credentials struct {
	// Token is the bearer token, "" when none was presented. It must never
	// be logged.
	Token string
	// Malformed is set when an Authorization header was present but not a
	// well-formed bearer credential.
	Malformed bool
	// Claimed is the LangGraph context the request claims.
	Claimed Context
}

// Caller is an identified caller: a verified principal plus its LangGraph
// context. Only Broker.Identify makes a Caller that Broker.Call accepts.
type Caller struct {
	Principal Principal `json:"principal"`
	Context
	// Binding is set when the caller presented a grant token.
	Binding *Binding `json:"binding,omitempty"`

	verified bool
	// identified is when Identify authenticated the caller, kept only
	// while tracing (trace.go).
	identified *identifyTiming
}

// Verified reports whether the caller came from Broker.Identify.
func (c Caller) Verified() bool { return c.verified }

// Scope is the grant scope, nil without a grant.
func (c Caller) Scope() map[string]any {
	if c.Binding == nil {
		return nil
	}
	return c.Binding.Scope
}
