package broker

import "context"

// Admitter is the optional Authenticator ability to refuse a caller that
// authenticated but whose authority is suspended: the principal, a key's
// owner, a grant's minter or every owner of the claimed graph is disabled.
// Identify asks it for every caller it makes, so every request, every MCP
// message and every passthrough re-identification is checked.
type Admitter interface {
	// Admit returns nil for a caller that may act, or the refusal (code
	// owner_disabled, or unavailable when the state cannot be read).
	Admit(ctx context.Context, c Caller) error
}

// admitted returns c when the authenticator (if it is an Admitter) admits
// it, else the refusal.
func admitted(ctx context.Context, a Authenticator, c Caller) (Caller, error) {
	ad, ok := a.(Admitter)
	if !ok {
		return c, nil
	}
	if err := ad.Admit(ctx, c); err != nil {
		return Caller{}, err
	}
	return c, nil
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (Principal, *Binding, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (Principal, *Binding, error) {
	return f(ctx, token)
}
