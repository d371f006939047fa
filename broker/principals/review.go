package principals

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// ReviewInput is everything an access review looks at: the configuration's
// roles and the store's keys, grants and disabled principals.
type ReviewInput struct {
	Now time.Time
	// Stale is the period after which an unused key is flagged.
	Stale    time.Duration
	Admins   []string
	Auditors []string
	Graphs   []ReviewGraph
	// Approvers are the approver roles of every rule.
	Approvers []ApproverRole
	Keys      []ReviewKey
	// Grants are the live grants.
	Grants []ReviewGrant
	// Disabled maps each disabled principal to when it was disabled.
	Disabled map[string]time.Time
}

// ReviewGraph is a graph's principals and owners.
type ReviewGraph struct {
	Name       string
	Principals []string
	Owners     []string
}

// ApproverRole is one principal an approve rule names.
type ApproverRole struct {
	Principal string
	Rule      string // config path of the rule
}

// ReviewKey is an API key, configured or made at run time.
type ReviewKey struct {
	Name      string
	Source    string // config | api
	Owner     string
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
	LastUsed  time.Time
}

// ReviewGrant is a live grant.
type ReviewGrant struct {
	ID        string
	Graph     string
	Run       string
	Nodes     []string
	MintedBy  string
	ExpiresAt time.Time
}

// Report is an access review.
type Report struct {
	GeneratedAt time.Time        `json:"generated_at"`
	Stale       string           `json:"stale"`
	Principals  []PrincipalEntry `json:"principals"`
	Graphs      []GraphEntry     `json:"graphs"`
	Keys        []KeyEntry       `json:"keys"`
	Grants      []GrantEntry     `json:"grants"`
	Findings    []Finding        `json:"findings"`
}

// PrincipalEntry is one principal and every privilege it holds.
type PrincipalEntry struct {
	Principal  string     `json:"principal"`
	Disabled   bool       `json:"disabled"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	Roles      []string   `json:"roles"`
}

// GraphEntry is a graph, who acts as it and who owns it.
type GraphEntry struct {
	Name       string   `json:"name"`
	Principals []string `json:"principals"`
	Owners     []string `json:"owners"`
	Flags      []string `json:"flags"`
}

// KeyEntry is an API key.
type KeyEntry struct {
	Name      string     `json:"name"`
	Source    string     `json:"source"`
	Owner     string     `json:"owner,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	LastUsed  *time.Time `json:"last_used_at,omitempty"`
	Status    string     `json:"status"`
	Flags     []string   `json:"flags"`
}

// GrantEntry is a live grant.
type GrantEntry struct {
	ID        string    `json:"grant_id"`
	Graph     string    `json:"graph"`
	Run       string    `json:"run_id"`
	Nodes     []string  `json:"nodes"`
	MintedBy  string    `json:"minted_by"`
	ExpiresAt time.Time `json:"expires_at"`
	Flags     []string  `json:"flags"`
}

// Finding is one thing a reviewer should act on.
type Finding struct {
	Flag    string `json:"flag"`
	Subject string `json:"subject"`
	Message string `json:"message"`
}

// The flags a review raises.
const (
	FlagOwnerDisabled = "owner_disabled"  // a key whose owner or creator is disabled is still live
	FlagStale         = "stale"           // a live key unused for the stale period
	FlagNoOwner       = "no_owner"        // a live key without an owner
	FlagNoLiveOwner   = "no_live_owner"   // a graph with no owner, or only disabled ones
	FlagMinterOff     = "minter_disabled" // a live grant whose minter is disabled
)

// Review builds the report: every principal with privileges, every graph,
// key and live grant, and the findings, all in a stable order.
func Review(in ReviewInput) Report {
	r := Report{GeneratedAt: in.Now.UTC(), Stale: formatDays(in.Stale)}
	roles := map[string][]string{}
	add := func(p, role string) {
		p = broker.PrincipalName(p)
		if !slices.Contains(roles[p], role) {
			roles[p] = append(roles[p], role)
		}
	}
	for _, a := range in.Admins {
		add(a, "admin")
	}
	for _, a := range in.Auditors {
		add(a, "auditor")
	}
	for _, a := range in.Approvers {
		add(a.Principal, "approver "+a.Rule)
	}
	disabled := func(p string) bool { _, ok := in.Disabled[broker.PrincipalName(p)]; return ok }
	r.Graphs = reviewGraphs(in, add, disabled, &r.Findings)
	r.Keys = reviewKeys(in, add, disabled, &r.Findings)
	r.Grants = reviewGrants(in, add, disabled, &r.Findings)
	for p, rs := range roles {
		sort.Strings(rs)
		e := PrincipalEntry{Principal: p, Roles: rs}
		if at, ok := in.Disabled[p]; ok {
			at = at.UTC()
			e.Disabled, e.DisabledAt = true, &at
		}
		r.Principals = append(r.Principals, e)
	}
	sort.Slice(r.Principals, func(i, j int) bool { return r.Principals[i].Principal < r.Principals[j].Principal })
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Subject < r.Findings[j].Subject })
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r
}

func reviewGraphs(in ReviewInput, add func(p, role string), disabled func(string) bool, fs *[]Finding) []GraphEntry {
	out := []GraphEntry{}
	for _, g := range in.Graphs {
		e := GraphEntry{Name: g.Name, Principals: nonNil(broker.PrincipalNames(g.Principals)), Owners: nonNil(broker.PrincipalNames(g.Owners)), Flags: []string{}}
		for _, p := range e.Principals {
			add(p, "principal of graph "+g.Name)
		}
		live := 0
		for _, o := range e.Owners {
			add(o, "owner of graph "+g.Name)
			if !disabled(o) {
				live++
			}
		}
		if live == 0 {
			e.Flags = append(e.Flags, FlagNoLiveOwner)
			msg := "graph declares no owners"
			if len(e.Owners) > 0 {
				msg = "every owner of the graph is disabled, so the graph is suspended"
			}
			*fs = append(*fs, Finding{Flag: FlagNoLiveOwner, Subject: "graph " + g.Name, Message: msg})
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func reviewKeys(in ReviewInput, add func(p, role string), disabled func(string) bool, fs *[]Finding) []KeyEntry {
	out := []KeyEntry{}
	for _, k := range in.Keys {
		e := KeyEntry{Name: k.Name, Source: k.Source, Owner: broker.PrincipalName(k.Owner), CreatedBy: broker.PrincipalName(k.CreatedBy),
			ExpiresAt: timePtr(k.ExpiresAt), LastUsed: timePtr(k.LastUsed), Status: "active", Flags: []string{}}
		subject := "key:" + k.Name
		switch {
		case !k.RevokedAt.IsZero():
			e.Status = "revoked"
		case !k.ExpiresAt.IsZero() && !in.Now.Before(k.ExpiresAt):
			e.Status = "expired"
		}
		if e.Owner != "" {
			add(e.Owner, "owner of "+subject)
		}
		if e.Status != "active" {
			out = append(out, e)
			continue
		}
		for _, p := range []string{e.Owner, e.CreatedBy} {
			if p != "" && disabled(p) && !slices.Contains(e.Flags, FlagOwnerDisabled) {
				e.Flags = append(e.Flags, FlagOwnerDisabled)
				*fs = append(*fs, Finding{Flag: FlagOwnerDisabled, Subject: subject, Message: fmt.Sprintf("%s is disabled but the key is not revoked (it is suspended; revoke it)", p)})
			}
		}
		if e.Owner == "" {
			e.Flags = append(e.Flags, FlagNoOwner)
			*fs = append(*fs, Finding{Flag: FlagNoOwner, Subject: subject, Message: "no owner is declared for the key"})
		}
		used := k.LastUsed
		if used.IsZero() {
			used = k.CreatedAt
		}
		if in.Stale > 0 && (used.IsZero() || in.Now.Sub(used) >= in.Stale) {
			e.Flags = append(e.Flags, FlagStale)
			msg := "never used"
			if !k.LastUsed.IsZero() {
				msg = "last used " + k.LastUsed.UTC().Format(time.RFC3339)
			}
			*fs = append(*fs, Finding{Flag: FlagStale, Subject: subject, Message: msg + ", not within " + formatDays(in.Stale)})
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func reviewGrants(in ReviewInput, add func(p, role string), disabled func(string) bool, fs *[]Finding) []GrantEntry {
	out := []GrantEntry{}
	for _, g := range in.Grants {
		e := GrantEntry{ID: g.ID, Graph: g.Graph, Run: g.Run, Nodes: nonNil(g.Nodes), MintedBy: broker.PrincipalName(g.MintedBy), ExpiresAt: g.ExpiresAt.UTC(), Flags: []string{}}
		add(e.MintedBy, "minted "+g.ID)
		if disabled(e.MintedBy) {
			e.Flags = append(e.Flags, FlagMinterOff)
			*fs = append(*fs, Finding{Flag: FlagMinterOff, Subject: "grant " + g.ID, Message: e.MintedBy + " minted it and is disabled; revoke the grant"})
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// formatDays writes a period as whole days when it is one ("30d").
func formatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as tables, one section each.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Access review at %s (stale after %s)\n\nPRINCIPAL\tSTATE\tROLES\n", r.GeneratedAt.Format(time.RFC3339), r.Stale)
	for _, p := range r.Principals {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Principal, state(p.Disabled), strings.Join(p.Roles, "; "))
	}
	fmt.Fprintf(tw, "\nGRAPH\tPRINCIPALS\tOWNERS\tFLAGS\n")
	for _, g := range r.Graphs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, dash(strings.Join(g.Principals, ", ")), dash(strings.Join(g.Owners, ", ")), dash(strings.Join(g.Flags, ",")))
	}
	fmt.Fprintf(tw, "\nKEY\tSOURCE\tOWNER\tEXPIRES\tLAST USED\tSTATUS\tFLAGS\n")
	for _, k := range r.Keys {
		fmt.Fprintf(tw, "key:%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Source, dash(k.Owner), day(k.ExpiresAt), day(k.LastUsed), k.Status, dash(strings.Join(k.Flags, ",")))
	}
	fmt.Fprintf(tw, "\nGRANT\tGRAPH\tRUN\tMINTED BY\tEXPIRES\tFLAGS\n")
	for _, g := range r.Grants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Graph, g.Run, g.MintedBy, g.ExpiresAt.Format(time.RFC3339), dash(strings.Join(g.Flags, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d findings\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  %s: %s: %s\n", f.Flag, f.Subject, f.Message)
	}
	return nil
}

func state(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "active"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func day(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02")
}
