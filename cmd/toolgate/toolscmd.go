package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/connectors/mcp"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

func toolsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "List the tool catalog, pin upstream MCP tools and draft new tools"}
	cmd.AddCommand(toolsListCmd(), toolsPinCmd(), toolsDiffCmd(), toolsScaffoldCmd())
	return cmd
}

func toolsListCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var timeout = defaultConnectTimeout
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the declared tools and the tools of every mcp target with their state",
		Long: "list prints the declared tools, then connects to every mcp target and prints each of its tools " +
			"with its state: exposed, changed (quarantined: its definition differs from its pin), unpinned, " +
			"invalid or removed. An mcp target that cannot be reached is said on stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cf.path(cmd), 1)
			if err != nil {
				return err
			}
			up, unreached := listUpstreams(cmd.Context(), cfg, timeout)
			for _, p := range unreached {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", p)
			}
			st, err := compile(cfg, policy.NewMemoryCounters(), zap.NewNop(), up)
			if err != nil {
				return printProblems(cmd, 1, cfg.File, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTARGET\tKIND\tSTATE\tTITLE")
			for _, t := range st.catalog.Tools() {
				if cfg.Targets[t.Target].MCP == nil {
					k, _ := config.KindOf(cfg.Targets[t.Target].Kind)
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Target, k.Runs, "declared", t.Title)
				}
			}
			for _, name := range mcpTargets(cfg) {
				printEntries(tw, name, up.snaps[name])
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for each mcp target")
	return cmd
}

// printEntries prints one upstream's tools, by catalog name.
func printEntries(w io.Writer, target string, snap *mcp.Snapshot) {
	if snap == nil {
		return
	}
	for _, e := range snap.Entries {
		state := string(e.State)
		if len(e.Changes) > 0 {
			state += " (" + partNames(e.Changes) + ")"
		}
		name, title := e.Name, ""
		if name == "" {
			name = "(" + e.Tool + ")"
		}
		if e.Definition != nil {
			title = e.Definition.Title
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, target, config.KindMCP, state, title)
	}
}

// listUpstreams connects to every mcp target once and evaluates its tools
// against the tools lock. A target that cannot be reached is left out of
// the view and reported.
func listUpstreams(ctx context.Context, cfg *config.Config, timeout time.Duration) (upstreamView, problemList) {
	v := upstreamView{snaps: map[string]*mcp.Snapshot{}}
	var probs problemList
	lock, lockErr := mcp.ReadLock(cfg.ToolsLock)
	for _, name := range mcpTargets(cfg) {
		mc := mcpConfig(cfg, name, cfg.Targets[name].MCP)
		defs, bad, err := listOne(ctx, mc, timeout)
		if err != nil {
			probs = append(probs, cfg.Problem("targets."+name, "cannot list the tools of the upstream MCP server: "+err.Error()).String())
			continue
		}
		snap, err := mcp.Evaluate(mc, lock, lockErr, defs, bad, compileSchemas)
		if err != nil {
			continue // the config's own problem, which compile reports
		}
		v.snaps[name] = snap
	}
	return v, probs
}

// listOne lists the tools of one upstream, waiting at most timeout (or the
// target's own timeout when it is longer).
func listOne(ctx context.Context, mc mcp.Config, timeout time.Duration) ([]mcp.Definition, []mcp.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, max(timeout, mc.Timeout))
	defer cancel()
	return mcp.List(ctx, mc, mcpOptions(zap.NewNop(), nil, nil))
}

func toolsPinCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var targets []string
	var timeout = 30 * time.Second
	cmd := &cobra.Command{
		Use:   "pin",
		Short: "Pin the current tool definitions of the mcp targets in the tools lock",
		Long: "pin connects to each mcp target (every one, or those --target names), lists its tools and writes " +
			"the digest of each definition to the tools lock (tools_lock, default tools.lock beside the config), " +
			"printing what changed. Pinning is what a person does after reviewing the definitions " +
			"(`toolgate tools diff`): a running toolgate serves a pinned tool only while its definition matches. " +
			"When a target cannot be reached nothing is written.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cf.path(cmd), 1)
			if err != nil {
				return err
			}
			return pinTools(cmd, cfg, targets, timeout)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringSliceVar(&targets, "target", nil, "pin only these mcp targets (repeat or comma-separate)")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for each mcp target")
	return cmd
}

// pinTools lists the chosen targets, then writes the lock once.
func pinTools(cmd *cobra.Command, cfg *config.Config, targets []string, timeout time.Duration) error {
	targets, err := chooseTargets(cfg, targets)
	if err != nil {
		return err
	}
	lock, err := mcp.ReadLock(cfg.ToolsLock)
	if err != nil {
		return fail(1, "%v", err)
	}
	out := cmd.OutOrStdout()
	for _, name := range targets {
		mc := mcpConfig(cfg, name, cfg.Targets[name].MCP)
		defs, bad, err := listOne(cmd.Context(), mc, timeout)
		if err != nil {
			return fail(1, "%v; nothing was written", err)
		}
		pins, err := mcp.Pin(defs)
		if err != nil {
			return fail(1, "target %s: %v; nothing was written", name, err)
		}
		changes, _ := mcp.Diff(lock.Targets[name], defs)
		printChanges(out, name, changes, true)
		for _, e := range bad {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: not pinned: %s\n", name, e.Reason)
		}
		lock.Set(name, pins)
	}
	if err := lock.WriteFile(cfg.ToolsLock); err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(out, "wrote %s\n", cfg.ToolsLock)
	return nil
}

func toolsDiffCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var targets []string
	var timeout = 30 * time.Second
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show how the mcp targets' tool definitions differ from their pins",
		Long: "diff connects to every mcp target (or those --target names) and prints each tool whose definition " +
			"is new, removed or changed since it was pinned, naming the parts that changed (description, " +
			"input_schema, output_schema, annotations, title); new tools of a target with expose: all are served " +
			"unpinned, so they are not pending. Exit 0 when nothing differs, 1 when something does, 2 when a " +
			"target or the lock could not be read (the targets that could are still shown).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cf.path(cmd), 2)
			if err != nil {
				return err
			}
			return diffTools(cmd, cfg, targets, timeout)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringSliceVar(&targets, "target", nil, "compare only these mcp targets (repeat or comma-separate)")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for each mcp target")
	return cmd
}

// chooseTargets returns the mcp targets a verb works on: those named, or
// every one.
func chooseTargets(cfg *config.Config, named []string) ([]string, error) {
	all := mcpTargets(cfg)
	for _, t := range named {
		if !slices.Contains(all, t) {
			return nil, fail(2, "no mcp target named %q (mcp targets: %s)", t, strings.Join(all, ", "))
		}
	}
	if len(named) > 0 {
		return named, nil
	}
	if len(all) == 0 {
		return nil, fail(2, "%s has no mcp target", cfg.File)
	}
	return all, nil
}

// diffTools prints the pending changes of the chosen mcp targets.
func diffTools(cmd *cobra.Command, cfg *config.Config, named []string, timeout time.Duration) error {
	targets, err := chooseTargets(cfg, named)
	if err != nil {
		return err
	}
	lock, err := mcp.ReadLock(cfg.ToolsLock)
	if err != nil {
		return fail(2, "%v", err)
	}
	out := cmd.OutOrStdout()
	differ, unread := false, 0
	for _, name := range targets {
		mc := mcpConfig(cfg, name, cfg.Targets[name].MCP)
		defs, _, err := listOne(cmd.Context(), mc, timeout)
		if err == nil {
			var changes []mcp.Change
			if changes, err = mcp.Diff(lock.Targets[name], defs); err == nil {
				if mc.Expose == mcp.ExposeAll {
					changes = pinnedOnly(changes)
				}
				differ = printChanges(out, name, changes, false) || differ
				continue
			}
		}
		unread++
		fmt.Fprintf(cmd.ErrOrStderr(), "toolgate: tools diff: %v\n", err)
	}
	switch {
	case differ:
		fmt.Fprintln(out, "review the changes, then run `toolgate tools pin` to accept them")
	case unread == 0:
		fmt.Fprintln(out, "no changes: every upstream tool matches its pin")
	}
	if unread > 0 {
		return fail(2, "%d mcp target(s) could not be compared", unread)
	}
	if differ {
		return exitError{code: 1}
	}
	return nil
}

// pinnedOnly drops the new tools of a target with expose: all, which are
// served without a pin and so are not pending.
func pinnedOnly(changes []mcp.Change) []mcp.Change {
	var out []mcp.Change
	for _, c := range changes {
		if c.Status != mcp.StatusNew {
			out = append(out, c)
		}
	}
	return out
}

// printChanges prints one target's changes, one line per tool ("target
// tool status parts"); unchanged tools only when all is set. It reports
// whether any tool differs.
func printChanges(w io.Writer, target string, changes []mcp.Change, all bool) bool {
	differ := false
	for _, c := range changes {
		if c.Status == mcp.StatusUnchanged && !all {
			continue
		}
		differ = differ || c.Status != mcp.StatusUnchanged
		line := fmt.Sprintf("%s\t%s\t%s", target, c.Tool, c.Status)
		if len(c.Parts) > 0 {
			line += "\t" + partNames(c.Parts)
		}
		fmt.Fprintln(w, line)
	}
	return differ
}

func partNames(ps []mcp.Part) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}
