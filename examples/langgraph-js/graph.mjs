// graph.mjs: a LangGraph.js supervisor graph whose tools run through toolgate.
//
// supervisor ─┬─▶ triage_model  ⇄ triage   (ToolNode: crm_* tools)
//             └─▶ billing_model ⇄ billing  (ToolNode: crm_list_orders, billing_refund)
//
// LangGraph's standard shape: a model node only asks for tool calls; the tool
// node named after the toolgate node (triage, billing) runs them, one task per
// tool call (Send), with the helper of toolgate.mjs. An approval interrupts
// that tool task, so a resume re-runs only the tool call, with the arguments
// already in the graph state: the model is never asked again.
//
// No LLM service is needed: ScriptedChatModel answers like a model would,
// with AIMessages that carry tool_calls, chosen from the request. Swap it for
// ChatOpenAI / ChatAnthropic (any chat model with bindTools) and nothing else
// changes.
//
// Run it against `toolgate dev` (keys from <data>/dev-keys.json):
//   TOOLGATE_URL=http://127.0.0.1:8080/mcp TOOLGATE_KEY=tgk_... \
//   TOOLGATE_APPROVER_KEY=tgk_... node graph.mjs "refund 250 on order 102"

import { createHash, randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

import { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { AIMessage, HumanMessage } from "@langchain/core/messages";
import { Command, END, MemorySaver, MessagesAnnotation, Send, START, StateGraph } from "@langchain/langgraph";
import { ToolNode } from "@langchain/langgraph/prebuilt";

import { Toolgate } from "./toolgate.mjs";

/**
 * ScriptedChatModel is a chat model whose replies come from a function of the
 * messages. It counts the calls per turn (the exact messages it is given); a
 * second call for the same turn answers with DIFFERENT arguments, as a real
 * model may, so a graph that asked the model again on resume would run or hold
 * another call, and the tests would see it.
 */
export class ScriptedChatModel extends BaseChatModel {
  constructor(script) {
    super({});
    this.script = script;
    this.turns = new Map(); // turn fingerprint → calls
  }

  _llmType() {
    return "scripted";
  }

  /** callsPerTurn is how often each turn was asked (1 everywhere when nothing was asked twice). */
  callsPerTurn() {
    return [...this.turns.values()];
  }

  bindTools() {
    return this;
  }

  async _generate(messages) {
    const turn = turnKey(messages);
    const n = (this.turns.get(turn) ?? 0) + 1;
    this.turns.set(turn, n);
    let message = this.script(messages);
    if (n > 1) message = perturbed(message, n);
    return { generations: [{ text: typeof message.content === "string" ? message.content : "", message }] };
  }
}

/** turnKey fingerprints the conversation a model is asked about. */
export function turnKey(messages) {
  const parts = messages.map((m) => [m.getType(), m.content, (m.tool_calls ?? []).map((c) => c.id), m.tool_call_id ?? null]);
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** perturbed is the same tool calls with other arguments and ids: what a model asked twice may do. */
function perturbed(message, attempt) {
  const tool_calls = message.tool_calls.map((call) => ({
    ...call,
    id: newCallId(),
    args: Object.fromEntries(Object.entries(call.args).map(([k, v]) => [k, typeof v === "number" ? v + attempt - 1 : v])),
  }));
  return new AIMessage({ content: message.content, tool_calls });
}

/** newCallId is a tool call id as a model gives one: unique per call. */
export const newCallId = () => `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`;

const lastHuman = (messages) => [...messages].reverse().find((m) => HumanMessage.isInstance(m))?.content ?? "";

const REQUESTS = /refund (?<amount>\d+(?:\.\d+)?) on order (?<order>\d+)|orders of customer (?<customer>\d+)|find (?<email>\S+@[\w.-]+\w)|search (?<name>\S+)/gi;

/**
 * demoScript plays the model of a node: the tool calls the request asks for,
 * then a final answer that quotes the tool results.
 *   "refund 250 on order 102" → billing_refund      "orders of customer 1" → crm_list_orders
 *   "find ada@example.com"    → crm_find_customer   "search Ada"           → crm_search_customers
 * Several requests in one message give several tool calls in one AIMessage.
 */
export function demoScript(messages) {
  if (messages.at(-1)?.getType() === "tool") {
    const results = [];
    for (let i = messages.length - 1; i >= 0 && messages[i].getType() === "tool"; i--) results.unshift(contentText(messages[i].content));
    return new AIMessage(`Done. The tools said: ${results.join(" | ")}`);
  }
  const tool_calls = [];
  for (const { groups: g } of String(lastHuman(messages)).matchAll(REQUESTS)) {
    let call;
    if (g.order) call = { name: "billing_refund", args: { order_id: Number(g.order), amount: Number(g.amount), reason: "customer request" } };
    else if (g.customer) call = { name: "crm_list_orders", args: { customer_id: Number(g.customer) } };
    else if (g.email) call = { name: "crm_find_customer", args: { email: g.email } };
    else call = { name: "crm_search_customers", args: { name: g.name } };
    tool_calls.push({ id: newCallId(), type: "tool_call", ...call });
  }
  if (!tool_calls.length) return new AIMessage("I cannot help with that.");
  return new AIMessage({ content: "", tool_calls });
}

export function contentText(content) {
  if (typeof content === "string") return content;
  return (content ?? []).map((b) => (typeof b === "string" ? b : (b.text ?? ""))).join("");
}

/** modelNode only asks the model; the tools node runs what it asks for. */
export function modelNode(model) {
  return async (state) => ({ messages: [await model.invoke(state.messages)] });
}

/**
 * routeToolCalls sends each tool call of the last AIMessage to the tools node
 * as its own task: an approval pauses only its own call, and a resume re-runs
 * only the calls that have not finished.
 */
export function routeToolCalls(toolsNode) {
  return (state) => {
    const last = state.messages.at(-1);
    if (last?.getType() !== "ai" || !last.tool_calls?.length) return END;
    return last.tool_calls.map((call) => new Send(toolsNode, { ...state, lg_tool_call: call }));
  };
}

/** supervisor routes money matters to billing, the rest to triage. */
export function supervisor(state) {
  const node = /refund|orders/i.test(String(lastHuman(state.messages))) ? "billing" : "triage";
  return new Command({ goto: `${node}_model` });
}

/**
 * buildGraph compiles the supervisor graph.
 * @param {object} o
 * @param {Record<string, import("@langchain/core/tools").StructuredToolInterface[]>} o.tools tools per toolgate node (triage, billing)
 * @param {BaseChatModel} [o.model] the nodes' chat model (default: ScriptedChatModel(demoScript))
 */
export function buildGraph({ tools, model = new ScriptedChatModel(demoScript), checkpointer = new MemorySaver() }) {
  const nodes = Object.keys(tools);
  let g = new StateGraph(MessagesAnnotation).addNode("supervisor", supervisor, { ends: nodes.map((n) => `${n}_model`) });
  for (const node of nodes) {
    g = g
      .addNode(`${node}_model`, modelNode(model.bindTools(tools[node])))
      .addNode(node, new ToolNode(tools[node]))
      .addConditionalEdges(`${node}_model`, routeToolCalls(node), [node, END])
      .addEdge(node, `${node}_model`);
  }
  return g.addEdge(START, "supervisor").compile({ checkpointer });
}

/** connect lists each node's tools from toolgate and builds the graph. */
export async function connect({ url, apiKey, graph = "support-bot", timeoutMs }) {
  const tg = new Toolgate({ url, apiKey, graph, timeoutMs });
  const tools = { triage: await tg.tools("triage"), billing: await tg.tools("billing") };
  return { tg, tools, app: buildGraph({ tools }) };
}

async function main() {
  const url = process.env.TOOLGATE_URL ?? "http://127.0.0.1:8080/mcp";
  const apiKey = process.env.TOOLGATE_KEY;
  if (!apiKey) throw new Error("set TOOLGATE_KEY to the agent key that `toolgate dev` printed");
  const request = process.argv.slice(2).join(" ") || "find ada@example.com";
  const { tg, app } = await connect({ url, apiKey });
  const config = { configurable: { thread_id: randomUUID(), run_id: randomUUID() } };
  try {
    let out = await app.invoke({ messages: [new HumanMessage(request)] }, config);
    while (out.__interrupt__?.length) {
      const approver = process.env.TOOLGATE_APPROVER_KEY;
      const resume = {};
      for (const pause of out.__interrupt__) {
        const { tool, args, message, approval_id, expires_at } = pause.value;
        console.log(`paused: ${tool} ${JSON.stringify(args)}\n  ${message}\n  approval ${approval_id} (expires ${expires_at})`);
        const decide = new URL(`/v1/approvals/${approval_id}/approve`, url);
        if (!approver) {
          console.log(`  approve it with: curl -X POST ${decide} -H "Authorization: Bearer <approver key>"`);
          continue;
        }
        const res = await fetch(decide, { method: "POST", headers: { Authorization: `Bearer ${approver}` } });
        console.log(`  approved by TOOLGATE_APPROVER_KEY: HTTP ${res.status}`);
        resume[pause.id] = { approval_id };
      }
      if (!approver) return;
      out = await app.invoke(new Command({ resume }), config);
    }
    console.log(contentText(out.messages.at(-1).content));
    console.log(`run ${config.configurable.run_id}: toolgate audit export --run ${config.configurable.run_id}`);
  } finally {
    await tg.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
