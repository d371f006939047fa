// graph.mjs: a LangGraph.js supervisor graph whose nodes call toolgate.
//
// supervisor ─┬─▶ triage  (crm_* tools)
//             └─▶ billing (crm_list_orders, billing_refund)
//
// No LLM service is needed: ScriptedChatModel answers like a model would,
// with AIMessages that carry tool_calls, chosen from the conversation so far.
// Swap it for ChatOpenAI / ChatAnthropic (with .bindTools(tools)) and nothing
// else changes.
//
// Run it against `toolgate dev` (keys from <data>/dev-keys.json):
//   TOOLGATE_URL=http://127.0.0.1:8080/mcp TOOLGATE_KEY=tgk_... \
//   TOOLGATE_APPROVER_KEY=tgk_... node graph.mjs "refund 250 on order 102"

import { createHash, randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

import { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { AIMessage, HumanMessage } from "@langchain/core/messages";
import { Command, END, MemorySaver, MessagesAnnotation, START, StateGraph } from "@langchain/langgraph";
import { ToolNode } from "@langchain/langgraph/prebuilt";

import { Toolgate } from "./toolgate.mjs";

/** ScriptedChatModel is a chat model whose replies come from a function of the messages. */
export class ScriptedChatModel extends BaseChatModel {
  constructor(script) {
    super({});
    this.script = script;
  }

  _llmType() {
    return "scripted";
  }

  async _generate(messages) {
    const message = this.script(messages);
    return { generations: [{ text: typeof message.content === "string" ? message.content : "", message }] };
  }
}

/** toolCall builds an AIMessage asking for one tool call; the id is stable across re-runs of a node. */
export function toolCall(name, args, messages) {
  const id = "call_" + createHash("sha256").update(`${messages.length}|${name}|${JSON.stringify(args)}`).digest("hex").slice(0, 16);
  return new AIMessage({ content: "", tool_calls: [{ id, name, args, type: "tool_call" }] });
}

const lastHuman = (messages) => [...messages].reverse().find((m) => HumanMessage.isInstance(m))?.content ?? "";
const answered = (messages) => messages.at(-1)?.getType?.() === "tool";

/**
 * demoScript plays the model of one node: one tool call picked from the
 * user's request, then a final answer that quotes the tool result.
 *   "find ada@example.com"            → triage:  crm_find_customer
 *   "search Ada"                      → triage:  crm_search_customers
 *   "orders of customer 1"            → billing: crm_list_orders
 *   "refund 250 on order 102"         → billing: billing_refund
 */
export function demoScript(messages) {
  if (answered(messages)) {
    return new AIMessage(`Done. The tool said: ${contentText(messages.at(-1).content)}`);
  }
  const text = String(lastHuman(messages));
  let m;
  if ((m = text.match(/refund (\d+(?:\.\d+)?) on order (\d+)/i))) {
    return toolCall("billing_refund", { order_id: Number(m[2]), amount: Number(m[1]), reason: "customer request" }, messages);
  }
  if ((m = text.match(/orders of customer (\d+)/i))) return toolCall("crm_list_orders", { customer_id: Number(m[1]) }, messages);
  if ((m = text.match(/find (\S+@\S+)/i))) return toolCall("crm_find_customer", { email: m[1] }, messages);
  if ((m = text.match(/search (\S+)/i))) return toolCall("crm_search_customers", { name: m[1] }, messages);
  return new AIMessage("I cannot help with that.");
}

/** routeScript plays the supervisor: billing for money, triage for the rest. */
export function routeScript(messages) {
  const node = /refund|orders/i.test(String(lastHuman(messages))) ? "billing" : "triage";
  return new AIMessage({ content: "", tool_calls: [{ id: `route_${messages.length}`, name: `transfer_to_${node}`, args: {}, type: "tool_call" }] });
}

export function contentText(content) {
  if (typeof content === "string") return content;
  return (content ?? []).map((b) => (typeof b === "string" ? b : (b.text ?? ""))).join("");
}

/**
 * agentNode is a model + tools loop that runs inside one graph node, so every
 * tool call it makes carries that node's identity (X-Toolgate-Node).
 */
export function agentNode(model, tools, maxSteps = 4) {
  const toolNode = new ToolNode(tools);
  return async (state, config) => {
    const added = [];
    for (let step = 0; step < maxSteps; step++) {
      const ai = await model.invoke([...state.messages, ...added], config);
      added.push(ai);
      if (!ai.tool_calls?.length) break;
      const out = await toolNode.invoke({ messages: [...state.messages, ...added] }, config);
      added.push(...out.messages);
    }
    return { messages: added };
  };
}

/**
 * buildGraph compiles the supervisor graph.
 * @param {object} o
 * @param {Record<string, import("@langchain/core/tools").StructuredToolInterface[]>} o.tools tools per node (triage, billing)
 * @param {(messages) => AIMessage} [o.script] the nodes' scripted model
 */
export function buildGraph({ tools, script = demoScript, checkpointer = new MemorySaver() }) {
  const router = new ScriptedChatModel(routeScript);
  const model = new ScriptedChatModel(script);
  return new StateGraph(MessagesAnnotation)
    .addNode(
      "supervisor",
      async (state, config) => {
        const ai = await router.invoke(state.messages, config);
        const goto = ai.tool_calls[0].name.replace("transfer_to_", "");
        return new Command({ goto });
      },
      { ends: ["triage", "billing"] },
    )
    .addNode("triage", agentNode(model, tools.triage))
    .addNode("billing", agentNode(model, tools.billing))
    .addEdge(START, "supervisor")
    .addEdge("triage", END)
    .addEdge("billing", END)
    .compile({ checkpointer });
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
      const pause = out.__interrupt__[0].value;
      console.log(`paused: ${pause.message}\n  approval ${pause.approval_id} (expires ${pause.expires_at})`);
      const approver = process.env.TOOLGATE_APPROVER_KEY;
      if (!approver) {
        console.log(`approve it with: curl -X POST ${new URL(`/v1/approvals/${pause.approval_id}/approve`, url)} -H "Authorization: Bearer <approver key>"`);
        return;
      }
      const res = await fetch(new URL(`/v1/approvals/${pause.approval_id}/approve`, url), {
        method: "POST",
        headers: { Authorization: `Bearer ${approver}` },
      });
      console.log(`approved by TOOLGATE_APPROVER_KEY: HTTP ${res.status}`);
      out = await app.invoke(new Command({ resume: { approval_id: pause.approval_id } }), config);
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
