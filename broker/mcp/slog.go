package mcp

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapHandler is a slog.Handler that writes to a zap.Logger, so mcp-go's
// transport log goes where the rest of toolgate logs instead of
// slog.Default.
type zapHandler struct {
	log   *zap.Logger
	attrs []zap.Field
	group string
}

var _ slog.Handler = zapHandler{}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	default:
		return zapcore.DebugLevel
	}
}

// Enabled reports whether zap logs at the level.
func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.Core().Enabled(zapLevel(l))
}

// Handle writes one record.
func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, h.field(a))
		return true
	})
	if ce := h.log.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

// WithAttrs returns a handler that adds attrs to every record.
func (h zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := h
	n.attrs = append(append([]zap.Field(nil), h.attrs...), make([]zap.Field, 0, len(attrs))...)
	for _, a := range attrs {
		n.attrs = append(n.attrs, h.field(a))
	}
	return n
}

// WithGroup returns a handler that prefixes attribute keys with name.
func (h zapHandler) WithGroup(name string) slog.Handler {
	n := h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return n
}

func (h zapHandler) field(a slog.Attr) zap.Field {
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	return zap.Any(key, a.Value.Resolve().Any())
}
