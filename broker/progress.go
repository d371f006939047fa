package broker

import "context"

// ProgressFunc reports how far a blocked call has come, e.g. while it waits
// for an approval. total is 0 when unknown; message is shown to the client
// and must be safe to show (no secrets, no unmasked values).
type ProgressFunc func(progress, total float64, message string)

type progressKey struct{}

// WithProgress returns a context that carries f. A front door whose client
// asked for progress (an MCP progress token) puts one in the context it
// passes to Call; the pipeline and its gates may report through it.
func WithProgress(ctx context.Context, f ProgressFunc) context.Context {
	if f == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, f)
}

// ProgressFrom returns the ProgressFunc in ctx, or a no-op when the client
// did not ask for progress. It never returns nil.
func ProgressFrom(ctx context.Context) ProgressFunc {
	if f, ok := ctx.Value(progressKey{}).(ProgressFunc); ok {
		return f
	}
	return func(float64, float64, string) {}
}

// HasProgress reports whether the client asked for progress: ctx carries
// a ProgressFunc from WithProgress. A connector that relays progress from
// its own backend (an upstream MCP server) asks for it only then.
func HasProgress(ctx context.Context) bool {
	_, ok := ctx.Value(progressKey{}).(ProgressFunc)
	return ok
}
