package mcp

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
)

// transportLog is the slog.Handler given to mcp-go's HTTP transport. It
// logs the message (a fixed text of the library) at debug level and drops
// the attributes: they can carry response bodies and upstream text.
type transportLog struct{ log *zap.Logger }

func newTransportLogger(log *zap.Logger) *slog.Logger { return slog.New(transportLog{log: log}) }

func (h transportLog) Enabled(context.Context, slog.Level) bool {
	return h.log.Core().Enabled(zap.DebugLevel)
}

func (h transportLog) Handle(_ context.Context, r slog.Record) error {
	h.log.Debug("mcp transport: "+r.Message, zap.String("level", r.Level.String()))
	return nil
}

func (h transportLog) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h transportLog) WithGroup(string) slog.Handler { return h }
