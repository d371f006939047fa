package postgres

import (
	"context"
	"maps"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// withTraceContext returns kv with the W3C trace context of ctx added
// (traceparent, tracestate: the SQLCommenter keys), kv itself when ctx
// carries none.
func withTraceContext(ctx context.Context, kv map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return kv
	}
	out := make(map[string]string, len(kv)+2)
	maps.Copy(out, kv)
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(out))
	return out
}

// Comment renders context as an SQLCommenter comment body: keys sorted,
// keys and values percent-encoded, values single-quoted, e.g.
// graph='support-bot',node='triage'. Empty values are left out; the result
// is "" when nothing is left.
//
// Every byte outside [A-Za-z0-9-_.~] is percent-encoded, so a value can
// never contain "*/", a quote or a backslash and cannot end the comment
// early.
func Comment(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k, v := range kv {
		if k != "" && v != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		percentEncode(&sb, k)
		sb.WriteString("='")
		percentEncode(&sb, kv[k])
		sb.WriteByte('\'')
	}
	return sb.String()
}

func percentEncode(sb *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_', b == '.', b == '~':
			sb.WriteByte(b)
		default:
			sb.WriteByte('%')
			sb.WriteByte(hex[b>>4])
			sb.WriteByte(hex[b&15])
		}
	}
}

// appendComment adds /*comment*/ to the end of a statement, before a
// trailing semicolon, and on its own line when the last line holds a "--"
// comment that would swallow it.
func appendComment(stmt, comment string) string {
	s := strings.TrimRight(stmt, " \t\r\n")
	semi := strings.HasSuffix(s, ";")
	s = strings.TrimRight(strings.TrimSuffix(s, ";"), " \t\r\n")
	sep := " "
	if i := strings.LastIndexByte(s, '\n'); strings.Contains(s[i+1:], "--") {
		sep = "\n"
	}
	s += sep + "/*" + comment + "*/"
	if semi {
		s += ";"
	}
	return s
}
