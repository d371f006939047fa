package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

// devConfigFile is the config `toolgate dev` leaves in its default data dir.
var devConfigFile = filepath.Join("toolgate-data", "toolgate.yaml")

// configFlag is the --config flag. For the verbs that only read (check,
// tools, policy, audit, replay), an unset flag names ./toolgate.yaml, or
// the instance `toolgate dev` left (toolgate-data/toolgate.yaml) when this
// folder has no toolgate.yaml; serve and stdio never fall back.
type configFlag struct {
	file     string
	readOnly bool
}

func (c *configFlag) register(cmd *cobra.Command) {
	help := "config file"
	if c.readOnly {
		help = "config file (default ./toolgate.yaml, else ./" + filepath.ToSlash(devConfigFile) + " left by toolgate dev)"
	} else {
		help = "config file (default ./toolgate.yaml)"
	}
	cmd.Flags().StringVar(&c.file, "config", "", help)
}

// path returns the file to read, saying on stderr when it fell back to
// the dev instance's config.
func (c *configFlag) path(cmd *cobra.Command) string {
	if c.file != "" {
		return c.file
	}
	if !c.readOnly || exists("toolgate.yaml") || !exists(devConfigFile) {
		return "toolgate.yaml"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "toolgate: using %s (this folder has no toolgate.yaml)\n", devConfigFile)
	return devConfigFile
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

func checkCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var connect bool
	var backtest string
	var timeout = defaultConnectTimeout
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config, its tools and its policy; print every problem as file:line: path: reason",
		Long: "check validates the config, every tool declaration and the policy without connecting to anything, " +
			"and prints every problem as file:line: path: reason (statements on SQLite targets are prepared on the " +
			"local file when it exists). With --connect it also prepares every SQL tool against its live target " +
			"(tables, columns and parameter types), reaches every HTTP target, and lists the tools of every mcp " +
			"target, checking them against the tools lock and compiling the policy with them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file := cf.path(cmd)
			cfg, err := loadConfig(cmd, file, 1)
			if err != nil {
				return err
			}
			var up upstreamView
			var probs problemList
			if connect {
				up, probs = listUpstreams(cmd.Context(), cfg, timeout)
			}
			st, more := compileAll(cfg, policy.NewMemoryCounters(), zap.NewNop(), up)
			probs = append(probs, more...)
			probs = append(probs, checkConnect(cmd.Context(), cfg, st.catalog, connect, timeout)...)
			for _, w := range st.warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", file, w)
			}
			if len(probs) > 0 {
				return printProblems(cmd, 1, file, probs)
			}
			for i, l := range cfg.Passthrough.Postgres {
				for _, w := range lock2Warnings(l, i) {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", file, w)
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: ok (%d tools, %d targets, %d graphs)\n", file, len(st.catalog.Tools()), len(cfg.Targets), len(cfg.Graphs))
			if !connect && hasRemoteTargets(cfg) {
				fmt.Fprintln(out, "not checked: tables, columns and parameter types on postgres targets, whether http targets answer, and the tools of mcp targets (rules over their arguments); --connect checks them")
			}
			if backtest != "" {
				return checkBacktest(cmd, cfg, st.policy, backtest)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&connect, "connect", false, "also prepare every SQL tool on its target, reach every HTTP target and list every mcp target's tools")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "with --connect: how long to wait for each target")
	cmd.Flags().StringVar(&backtest, "backtest", "", "also decide the calls recorded since this time (7d, 168h, a date) under this config and print what would change")
	return cmd
}

// loadConfig loads file. On a problem it prints every one to stderr and
// returns an exitError with code.
func loadConfig(cmd *cobra.Command, file string, code int) (*config.Config, error) {
	cfg, err := config.Load(file, os.LookupEnv)
	if err != nil {
		if !exists(file) {
			return nil, fail(code, "%s: cannot read: no such file (pass --config FILE; `toolgate dev` leaves %s)", file, filepath.ToSlash(devConfigFile))
		}
		return nil, printProblems(cmd, code, file, err)
	}
	return cfg, nil
}

// loadStatic loads the config and compiles its tools, policy and masking,
// for the verbs that need no server and no store. Problems exit 1.
func loadStatic(cmd *cobra.Command, file string) (*config.Config, *static, error) {
	cfg, err := loadConfig(cmd, file, 1)
	if err != nil {
		return nil, nil, err
	}
	st, err := compile(cfg, policy.NewMemoryCounters(), zap.NewNop(), upstreamView{})
	if err != nil {
		return nil, nil, printProblems(cmd, 1, file, err)
	}
	return cfg, st, nil
}

// printProblems prints a list of problems one per line on stderr and
// returns the exitError that ends the verb with code. A single problem
// about the whole file (it cannot be read) becomes the error itself.
func printProblems(cmd *cobra.Command, code int, file string, err error) error {
	var lines []string
	var cps config.Problems
	var pl problemList
	switch {
	case errors.As(err, &cps):
		if len(cps) == 1 && cps[0].Line == 0 && cps[0].Path == "" {
			return fail(code, "%s", cps[0].String())
		}
		for _, p := range cps {
			lines = append(lines, p.String())
		}
	case errors.As(err, &pl):
		lines = pl
	default:
		return exitError{code: code, err: err}
	}
	for _, l := range lines {
		fmt.Fprintln(cmd.ErrOrStderr(), l)
	}
	if len(lines) == 1 {
		return fail(code, "1 problem in %s and its tools", file)
	}
	return fail(code, "%d problems in %s and its tools", len(lines), file)
}

// hasRemoteTargets reports whether a target is checked only with --connect.
func hasRemoteTargets(cfg *config.Config) bool {
	for _, t := range cfg.Targets {
		if t.SQLite == nil {
			return true
		}
	}
	return false
}
