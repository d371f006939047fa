package main

import (
	"context"
	"time"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/tools"
)

// defaultConnectTimeout bounds each target check of `check --connect`.
const defaultConnectTimeout = 5 * time.Second

func checkConnect(ctx context.Context, cfg *config.Config, cat *tools.Catalog, timeout time.Duration) problemList {
	return nil
}
