package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/broker"
)

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Inspect policy decisions"}
	var file, graph, node, tool, args, principal, scope, run string
	explain := &cobra.Command{
		Use:   "explain",
		Short: "Print the decision for a call and every rule that matched or not, without calling anything",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := loadStatic(cmd, file)
			if err != nil {
				return err
			}
			t, ok := st.catalog.Lookup(tool)
			if !ok {
				fmt.Fprintf(cmd.ErrOrStderr(), "no tool named %q\n", tool)
				return exitError{1}
			}
			a, err := decodeObject(args, "--args")
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{1}
			}
			caller := broker.Caller{Principal: broker.Principal{Subject: principal}, Context: broker.Context{Graph: graph, Node: node, Run: run}}
			if scope != "" {
				sc, err := decodeObject(scope, "--scope")
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return exitError{1}
				}
				caller.Binding = &broker.Binding{Graph: graph, Node: node, Run: run, Scope: sc}
			}
			out := cmd.OutOrStdout()
			if err := t.Spec.ValidateArgs(a); err != nil {
				fmt.Fprintf(out, "arguments: refused before policy: %v\n", err)
			}
			x := st.policy.Explain(broker.Request{Caller: caller, Tool: t, Args: a, Now: time.Now()})
			return x.WriteText(out)
		},
	}
	explain.Flags().StringVar(&file, "config", "toolgate.yaml", "config file")
	explain.Flags().StringVar(&graph, "graph", "", "graph name")
	explain.Flags().StringVar(&node, "node", "", "node path")
	explain.Flags().StringVar(&tool, "tool", "", "tool name")
	explain.Flags().StringVar(&args, "args", "{}", "the call's arguments as a JSON object")
	explain.Flags().StringVar(&principal, "principal", "", "the caller principal (e.g. key:support-bot)")
	explain.Flags().StringVar(&scope, "scope", "", "a grant scope as a JSON object (the call then counts as made with a grant)")
	explain.Flags().StringVar(&run, "run", "", "run id")
	for _, f := range []string{"graph", "node", "tool"} {
		_ = explain.MarkFlagRequired(f)
	}
	cmd.AddCommand(explain, policyBacktestCmd())
	return cmd
}

// decodeObject decodes a JSON object with numbers as json.Number, as the
// broker does.
func decodeObject(s, flag string) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, fmt.Errorf("%s must be a JSON object", flag)
	}
	return m, nil
}
