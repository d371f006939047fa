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
	cf := configFlag{readOnly: true}
	var graph, node, tool, args, principal, scope, run string
	explain := &cobra.Command{
		Use:   "explain",
		Short: "Print the decision for a call and every rule that matched or not, without calling anything",
		Long: "explain prints the decision the broker would take for a call and every rule that matched or not. " +
			"It calls nothing and charges no budget. It exits 1 with \"refused\" when the call would be refused " +
			"before a decision (arguments that break the tool's input schema, a rule that cannot be evaluated).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, st, err := loadStatic(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			t, ok := st.catalog.Lookup(tool)
			if !ok {
				return fail(1, "no tool named %q", tool)
			}
			a, err := decodeObject(args, "--args")
			if err != nil {
				return fail(1, "%v", err)
			}
			caller := broker.Caller{Principal: broker.Principal{Subject: principal}, Context: broker.Context{Graph: graph, Node: node, Run: run}}
			if scope != "" {
				sc, err := decodeObject(scope, "--scope")
				if err != nil {
					return fail(1, "%v", err)
				}
				caller.Binding = &broker.Binding{Graph: graph, Node: node, Run: run, Scope: sc}
			}
			out := cmd.OutOrStdout()
			if err := t.Spec.ValidateArgs(a); err != nil {
				fmt.Fprintf(out, "call:     graph %q node %q tool %q\n", graph, node, tool)
				fmt.Fprintf(out, "decision: refused before policy: %v\n", err)
				return fail(1, "refused: the arguments break the input schema of %s; nothing would run", tool)
			}
			x := st.policy.Explain(broker.Request{Caller: caller, Tool: t, Args: a, Now: time.Now()})
			if err := x.WriteText(out); err != nil {
				return err
			}
			if x.Err != nil {
				return fail(1, "refused: %v", x.Err)
			}
			return nil
		},
	}
	cf.register(explain)
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
