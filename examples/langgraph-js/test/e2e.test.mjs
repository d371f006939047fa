// End-to-end: the real toolgate binary (`toolgate dev`) over loopback, the
// graph of graph.mjs, and the helper of toolgate.mjs.
//
// The binary is TOOLGATE_BIN when set, else built from this repository with
// `go build` into a temp dir. Each test runs on its own thread and run id.

import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { AIMessage, HumanMessage } from "@langchain/core/messages";
import { Command } from "@langchain/langgraph";

import { buildGraph, contentText, demoScript, newCallId, ScriptedChatModel } from "../graph.mjs";
import { identityFrom, nodePath, Toolgate, ToolgateError } from "../toolgate.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function waitHealthy(base, child, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`toolgate dev exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`toolgate dev did not answer /healthz within ${ms} ms`);
}

const tmp = mkdtempSync(path.join(tmpdir(), "toolgate-langgraph-js-"));
let child;
let base;
let keys;
let tg;
let tools;
let demoDB; // path of the demo SQLite database toolgate dev writes refunds to
let serverLog = ""; // stderr only: the dev banner on stdout prints the keys on purpose

before(async () => {
  let bin = process.env.TOOLGATE_BIN;
  if (!bin) {
    bin = path.join(tmp, "toolgate");
    execFileSync("go", ["build", "-o", bin, "./cmd/toolgate"], { cwd: repoRoot, stdio: "inherit" });
  }
  const port = await freePort();
  const data = path.join(tmp, "data");
  child = spawn(bin, ["dev", "--data", data, "--listen", `127.0.0.1:${port}`], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.resume();
  child.stderr.on("data", (b) => (serverLog += b));
  base = `http://127.0.0.1:${port}`;
  await waitHealthy(base, child);
  keys = JSON.parse(readFileSync(path.join(data, "dev-keys.json"), "utf8"));
  tg = new Toolgate({ url: `${base}/mcp`, apiKey: keys.agent_key, graph: "support-bot", timeoutMs: 10_000 });
  tools = { triage: await tg.tools("triage"), billing: await tg.tools("billing") };
  demoDB = path.join(data, "demo.db");
});

after(async () => {
  await tg?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(tmp, { recursive: true, force: true });
});

// refunds counts the rows the refund tool wrote for an order, read from the
// demo database with the sqlite3 CLI (no native npm module to build).
const refunds = (orderId) =>
  Number(execFileSync("sqlite3", ["-readonly", demoDB, `SELECT count(*) FROM refunds WHERE order_id = ${Number(orderId)}`], { encoding: "utf8" }).trim());
const newConfig = () => ({ configurable: { thread_id: randomUUID(), run_id: randomUUID() } });
const toolMessages = (out) => out.messages.filter((m) => m.getType() === "tool");
const aiToolCalls = (out) => out.messages.filter((m) => m.getType() === "ai" && m.tool_calls?.length);

// askedOncePerTurn: the model was never asked the same turn twice (a resume
// must not ask it; asked again, the scripted model answers other arguments).
function askedOncePerTurn(model) {
  const calls = model.callsPerTurn();
  assert.ok(calls.length > 0, "the model was never called");
  assert.deepEqual([...new Set(calls)], [1], `a turn was asked more than once: ${calls}`);
}

// executed lists the calls of a tool in a run that reached the target (the
// run's audit trace, read as an auditor).
async function executed(run, tool) {
  const r = await fetch(`${base}/v1/runs/${run}/trace`, { headers: { Authorization: `Bearer ${keys.approver_key}` } });
  assert.equal(r.status, 200);
  return (await r.json()).events.filter((e) => e.kind === "tool_call" && e.tool === tool && e.status === "ok");
}

async function decide(approvalId, verb) {
  const r = await fetch(`${base}/v1/approvals/${approvalId}/${verb}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${keys.approver_key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: `e2e ${verb}` }),
  });
  assert.equal(r.status, 200, `${verb} ${approvalId}: HTTP ${r.status} ${await r.text()}`);
}

describe("identity from the LangGraph config", () => {
  test("node path from checkpoint_ns", () => {
    const cases = [
      ["supervisor:3f2a|research:9c1d", "supervisor/research"],
      ["billing:1b2c", "billing"],
      ["a:1|b:2|c:3", "a/b/c"],
      ["triage", "triage"],
    ];
    for (const [ns, want] of cases) assert.equal(nodePath(ns), want, ns);
  });

  test("identity fields", () => {
    const id = identityFrom(
      { configurable: { thread_id: "t1", run_id: "r1" }, metadata: { langgraph_checkpoint_ns: "supervisor:x|research:y" }, toolCall: { id: "call_1" } },
      "support-bot",
    );
    assert.deepEqual(id, { graph: "support-bot", node: "supervisor/research", run: "r1", thread: "t1", toolCallId: "call_1" });
    const top = identityFrom({ configurable: { toolgate_run_id: "keep", run_id: "server" }, metadata: { langgraph_node: "triage" } }, "g");
    assert.deepEqual(top, { graph: "g", node: "triage", run: "keep" });
  });

  test("a call outside a graph is refused before it is sent", async () => {
    const find = tools.triage.find((t) => t.name === "crm_find_customer");
    await assert.rejects(find.invoke({ email: "ada@example.com" }), (err) => err instanceof ToolgateError && err.code === "unidentified" && /outside a LangGraph node/.test(err.message));
    await assert.rejects(find.invoke({ email: "ada@example.com" }, { metadata: { langgraph_node: "triage" } }), /no run id/);
  });
});

describe("toolgate dev through the graph", () => {
  test("each node lists only its own tools", () => {
    const names = (ts) => ts.map((t) => t.name).sort();
    assert.deepEqual(names(tools.triage), ["crm_find_customer", "crm_list_orders", "crm_search_customers"]);
    assert.deepEqual(names(tools.billing), ["billing_refund", "crm_list_orders"]);
  });

  test("masked values arrive masked, as text, with the identity of the tools node", async () => {
    const model = new ScriptedChatModel(demoScript);
    const config = newConfig();
    const out = await buildGraph({ tools, model }).invoke({ messages: [new HumanMessage("find ada@example.com")] }, config);
    const [msg] = toolMessages(out);
    assert.equal(typeof msg.content, "string");
    assert.equal(JSON.parse(msg.content).rows[0].card_number, "************4242", "the model reads the JSON toolgate sent");
    assert.match(msg.content, /\*{12}4242/);
    assert.doesNotMatch(msg.content, /4242424242424242/);
    assert.doesNotMatch(msg.content, /ada@example\.com/);
    askedOncePerTurn(model);
    const [call] = await executed(config.configurable.run_id, "crm_find_customer");
    assert.deepEqual([call.node, call.thread, call.tool_call_id], ["triage", config.configurable.thread_id, aiToolCalls(out)[0].tool_calls[0].id]);
  });

  test("a tool the node may not call is refused by toolgate and nothing runs", async () => {
    // A misconfigured graph: the triage tools node holds billing's refund tool.
    const refund = tools.billing.find((t) => t.name === "billing_refund");
    const model = new ScriptedChatModel((messages) =>
      messages.at(-1).getType() === "tool"
        ? demoScript(messages)
        : new AIMessage({ content: "", tool_calls: [{ id: newCallId(), type: "tool_call", name: "billing_refund", args: { order_id: 105, amount: 5, reason: "not mine to do" } }] }),
    );
    const before = refunds(105);
    const out = await buildGraph({ tools: { triage: [refund] }, model }).invoke({ messages: [new HumanMessage("triage this")] }, newConfig());
    const [msg] = toolMessages(out);
    assert.equal(msg.status, "error");
    assert.match(contentText(msg.content), /forbidden/);
    assert.match(contentText(out.messages.at(-1).content), /forbidden/, "the model read the refusal");
    assert.equal(refunds(105), before);
    askedOncePerTurn(model);
  });

  test("a refund over 100 pauses the tool task, is approved over HTTP and runs exactly once", async () => {
    const model = new ScriptedChatModel(demoScript);
    const app = buildGraph({ tools, model });
    const config = newConfig();
    const start = refunds(104);
    let out = await app.invoke({ messages: [new HumanMessage("refund 250 on order 104")] }, config);
    assert.equal(out.__interrupt__?.length, 1, "the graph should be interrupted");
    const pause = out.__interrupt__[0].value;
    assert.match(pause.approval_id, /^ap_/);
    assert.ok(Date.parse(pause.expires_at) > Date.now());
    assert.match(pause.message, /NOT performed/);
    assert.equal(pause.tool, "billing_refund");
    assert.equal(refunds(104), start, "nothing runs before the approval");

    // Resuming before anyone decided pauses again on the same approval.
    out = await app.invoke(new Command({ resume: { approval_id: pause.approval_id } }), config);
    assert.equal(out.__interrupt__?.[0]?.value.approval_id, pause.approval_id);
    assert.equal(refunds(104), start);

    await decide(pause.approval_id, "approve");
    out = await app.invoke(new Command({ resume: { approval_id: pause.approval_id } }), config);
    assert.equal(out.__interrupt__, undefined);
    const result = toolMessages(out).at(-1);
    assert.notEqual(result.status, "error", contentText(result.content));
    assert.equal(JSON.parse(result.content).rows[0].order_id, 104);
    assert.equal(refunds(104), start + 1);
    askedOncePerTurn(model); // the resumes asked the model nothing

    // The same call again in the same run gets the recorded result.
    out = await app.invoke({ messages: [new HumanMessage("refund 250 on order 104")] }, config);
    assert.equal(out.__interrupt__, undefined);
    assert.match(contentText(toolMessages(out).at(-1).content), /"order_id":104/);
    assert.equal(refunds(104), start + 1, "a repeat must not run the refund twice");
    askedOncePerTurn(model);
  });

  test("a denied approval reaches the model as approval_denied", async () => {
    const model = new ScriptedChatModel(demoScript);
    const app = buildGraph({ tools, model });
    const config = newConfig();
    const start = refunds(103);
    let out = await app.invoke({ messages: [new HumanMessage("refund 300 on order 103")] }, config);
    const pause = out.__interrupt__[0].value;
    await decide(pause.approval_id, "deny");
    out = await app.invoke(new Command({ resume: { approval_id: pause.approval_id } }), config);
    assert.equal(out.__interrupt__, undefined);
    const msg = toolMessages(out).at(-1);
    assert.equal(msg.status, "error");
    assert.match(contentText(msg.content), /approval_denied/);
    assert.match(contentText(out.messages.at(-1).content), /approval_denied/, "the model read the denial");
    assert.equal(refunds(103), start);
    askedOncePerTurn(model);
  });

  test("parallel tool calls: each approval pauses and resumes its own call, each runs once", async () => {
    const model = new ScriptedChatModel(demoScript);
    const app = buildGraph({ tools, model });
    const config = newConfig();
    const run = config.configurable.run_id;
    const [r104, r103] = [refunds(104), refunds(103)];
    let out = await app.invoke({ messages: [new HumanMessage("refund 250 on order 104, refund 300 on order 103 and the orders of customer 1")] }, config);
    const [ai] = aiToolCalls(out);
    assert.deepEqual(
      ai.tool_calls.map((c) => c.name),
      ["billing_refund", "billing_refund", "crm_list_orders"],
    );
    assert.equal(new Set(ai.tool_calls.map((c) => c.id)).size, 3);
    const pauses = Object.fromEntries(out.__interrupt__.map((p) => [p.value.args.order_id, p]));
    assert.deepEqual(Object.keys(pauses).sort(), ["103", "104"]);
    assert.equal(new Set(out.__interrupt__.map((p) => p.id)).size, 2);
    assert.equal(new Set(out.__interrupt__.map((p) => p.value.approval_id)).size, 2);
    assert.equal((await executed(run, "crm_list_orders")).length, 1, "the call that needs no approval ran");

    // Approve and resume the first; the second pauses again on its own approval.
    const [first, second] = [pauses[104], pauses[103]];
    await decide(first.value.approval_id, "approve");
    out = await app.invoke(new Command({ resume: { [first.id]: { approval_id: first.value.approval_id } } }), config);
    assert.deepEqual(
      out.__interrupt__.map((p) => p.value.approval_id),
      [second.value.approval_id],
    );
    assert.deepEqual([refunds(104), refunds(103)], [r104 + 1, r103]);

    await decide(second.value.approval_id, "approve");
    out = await app.invoke(new Command({ resume: Object.fromEntries(out.__interrupt__.map((p) => [p.id, { approval_id: p.value.approval_id }])) }), config);
    assert.equal(out.__interrupt__, undefined);
    const results = toolMessages(out);
    assert.deepEqual(results.map((m) => m.tool_call_id).sort(), ai.tool_calls.map((c) => c.id).sort(), "one result per tool call, matched by id");
    assert.ok(results.every((m) => m.status !== "error"), results.map((m) => m.content).join("\n"));
    assert.deepEqual([refunds(104), refunds(103)], [r104 + 1, r103 + 1]);
    assert.equal((await executed(run, "billing_refund")).length, 2);
    assert.equal((await executed(run, "crm_list_orders")).length, 1, "resumes do not re-run finished calls");
    askedOncePerTurn(model);
  });

  test("per-node grant tokens for a run (skipped without POST /v1/grants)", async (t) => {
    let run;
    try {
      run = await tg.startRun({ nodes: ["triage", "billing"], ttl: "5m" });
    } catch (err) {
      if (err instanceof ToolgateError && err.code === "grants_unavailable") return t.skip("this toolgate has no /v1/grants yet");
      throw err;
    }
    try {
      assert.deepEqual([...run.nodes].sort(), ["billing", "triage"]);
      const model = new ScriptedChatModel(demoScript);
      const out = await buildGraph({ tools, model }).invoke({ messages: [new HumanMessage("orders of customer 1")] }, { configurable: { thread_id: randomUUID(), toolgate_run_id: run.runId } });
      assert.match(contentText(toolMessages(out)[0].content), /"id":101/);
      const [call] = await executed(run.runId, "crm_list_orders");
      assert.deepEqual([call.auth_method, call.token_id], ["grant", run.grantId], "the call carried the run's grant token");
      askedOncePerTurn(model);
    } finally {
      await run.end();
    }
    const r = await fetch(`${base}/v1/grants/${run.grantId}`, { headers: { Authorization: `Bearer ${keys.agent_key}` } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).status, "revoked", "end() revokes the run's grant");
  });
});

describe("toolgate unreachable", () => {
  // A loopback proxy in front of toolgate: tools are listed through it, then
  // it stops answering (hang) or stops listening (down).
  async function proxied(timeoutMs) {
    const state = { mode: "forward" };
    const upstream = new URL(base);
    const server = http.createServer((req, res) => {
      if (state.mode === "hang") return; // never answers
      const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on("error", () => res.destroy());
      req.pipe(up);
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${server.address().port}/mcp`;
    const client = new Toolgate({ url, apiKey: keys.agent_key, graph: "support-bot", timeoutMs });
    const nodeTools = { triage: await client.tools("triage"), billing: await client.tools("billing") };
    const stop = async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    };
    return { state, client, nodeTools, stop };
  }

  test("a hung toolgate fails the call within the timeout", async () => {
    const p = await proxied(1500);
    try {
      p.state.mode = "hang";
      const started = Date.now();
      const out = await buildGraph({ tools: p.nodeTools }).invoke({ messages: [new HumanMessage("find ada@example.com")] }, newConfig());
      const elapsed = Date.now() - started;
      const [msg] = toolMessages(out);
      assert.equal(msg.status, "error");
      assert.match(contentText(msg.content), /^toolgate_unreachable: toolgate at http:\/\/127\.0\.0\.1:\d+ could not be reached \(no answer within 1500 ms\); the tool was not run$/);
      assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    } finally {
      await p.stop();
      await p.client.close();
    }
  });

  test("a stopped toolgate fails the call with a clear message", async () => {
    const p = await proxied(1500);
    await p.stop();
    try {
      const out = await buildGraph({ tools: p.nodeTools }).invoke({ messages: [new HumanMessage("find ada@example.com")] }, newConfig());
      const [msg] = toolMessages(out);
      assert.equal(msg.status, "error");
      assert.match(contentText(msg.content), /^toolgate_unreachable: toolgate at http:\/\/127\.0\.0\.1:\d+ could not be reached \((ECONNREFUSED|UND_ERR_SOCKET)\); the tool was not run$/);
      assert.match(contentText(out.messages.at(-1).content), /toolgate_unreachable/, "the model read it");
    } finally {
      await p.client.close();
    }
  });
});

test("the README's JS snippet runs as written", async () => {
  // Only the placeholders change: URL, key, ids, the chat model (the scripted
  // one) and the human's approval. The snippet's imports stay at the top of a
  // module written next to toolgate.mjs, so "./toolgate.mjs" resolves as documented.
  const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const rest = readme.slice(readme.indexOf("<!-- README snippet js:"));
  const start = rest.indexOf("```js\n") + "```js\n".length;
  const approveLine = "// ... a human approves (Slack, POST /v1/approvals/{id}/approve, or `toolgate approvals approve`) ...";
  const code = rest
    .slice(start, rest.indexOf("```\n", start))
    .replace('"http://127.0.0.1:8080/mcp"', JSON.stringify(`${base}/mcp`))
    .replace('"tgk_..."', JSON.stringify(keys.agent_key))
    .replace('"t-1"', JSON.stringify(randomUUID()))
    .replace('"r-1"', JSON.stringify(randomUUID()))
    .replace(approveLine, "for (const i of out.__interrupt__) await approve(i.value.approval_id);");
  assert.ok(!code.includes(approveLine) && code.includes("await approve("), "the README snippet lost its approval line");
  const lines = code.split("\n");
  const file = path.join(here, "..", ".readme-snippet.generated.mjs");
  writeFileSync(
    file,
    [...lines.filter((l) => l.startsWith("import ")), "export default async function snippet({ chatModel, approve }) {", ...lines.filter((l) => !l.startsWith("import ")), "return out;", "}"].join("\n"),
  );
  try {
    const { default: snippet } = await import(pathToFileURL(file).href);
    const chatModel = new ScriptedChatModel(demoScript);
    const start102 = refunds(102);
    const out = await snippet({
      chatModel,
      approve: async (approvalId) => {
        assert.equal(refunds(102), start102, "nothing ran before the approval");
        await decide(approvalId, "approve");
      },
    });
    assert.equal(out.__interrupt__, undefined);
    const [result] = toolMessages(out);
    assert.notEqual(result.status, "error", contentText(result.content));
    assert.match(contentText(result.content), /"order_id":102/);
    assert.equal(refunds(102), start102 + 1);
    askedOncePerTurn(chatModel);
  } finally {
    rmSync(file, { force: true });
  }
});

test("the server log holds no key", () => {
  for (const k of [keys.agent_key, keys.approver_key]) assert.ok(!serverLog.includes(k.slice(4)), "a key appeared in the server log");
});
