package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy/mask"
)

func serveCmd() *cobra.Command {
	var cf configFlag
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the toolgate server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cf.path(cmd), 2)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			// The log never shows a credential the config holds, whoever
			// logs it.
			log := newLogger(mask.RedactingWriter(cmd.ErrOrStderr(), mask.SecretsFromConfig(*cfg)), false)
			defer func() { _ = log.Sync() }()
			return serve(cmd.Context(), cfg, os.LookupEnv, log, nil)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (overrides the config's listen)")
	return cmd
}

// serve runs the server until ctx ends. ready, if set, is called with the
// bound address once the server accepts connections.
func serve(ctx context.Context, cfg *config.Config, env config.Env, log *zap.Logger, ready func(addr string, a *app)) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	if cfg.PublicURL == "" {
		// Derived from the bound address, so --listen 127.0.0.1:0 works.
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	a.env = env
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	fp := a.fingerprint()
	go func() { _ = a.watch(watchCtx, 2*time.Second, hup, fp) }()
	srv := &http.Server{
		Handler:           a.handler,
		MaxHeaderBytes:    maxHeaderBytes(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("toolgate listening", zap.String("addr", ln.Addr().String()), zap.String("version", version))
	if ready != nil {
		ready(ln.Addr().String(), a)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown", zap.Error(err))
	}
	return nil
}

// newLogger returns a JSON logger, or a console logger for dev.
func newLogger(w io.Writer, console bool) *zap.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if console {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zap.InfoLevel))
}
