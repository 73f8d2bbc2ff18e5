// A bounded load test of loom serve (fixed request counts; it ends by
// itself): rounds of well-formed requests at 10x the queue limit mixed with
// malformed JSON, wrong types, oversized bodies, unknown models and clients
// that hang up mid-stream. The server must stay up, answer every
// well-formed request correctly (the greedy answer, or 429 with
// Retry-After), free every KV block, and its resident memory must come back
// to within 10% of where it was after a warm-up round.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServe, metric } from "./serve.mjs";

const PARALLEL = 2, QUEUE = 4, FLOOD = 10 * QUEUE, ROUNDS = 3;
const prompts = ["Once upon a time", "The little dog", "Lily and Ben", "One day"];
let server;
const expected = new Map();  // prompt -> greedy answer of 48 tokens

before(async () => {
  server = await startServe(["--parallel", String(PARALLEL), "--queue", String(QUEUE), "--body-limit", "0.0625"]);
});
after(async () => { await server.stop(); });

const post = (path, body, init = {}) =>
  fetch(server.url + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });

async function completion(prompt, stream) {
  const res = await post("/v1/completions", { prompt, max_tokens: 48, temperature: 0, stream });
  if (res.status === 429) {
    assert.ok(Number(res.headers.get("retry-after")) >= 1, "429 without Retry-After");
    assert.equal((await res.json()).error.code, "rate_limit_exceeded");
    return "busy";
  }
  assert.equal(res.status, 200, await res.clone().text());
  let text = "";
  if (!stream) {
    text = (await res.json()).choices[0].text;
  } else {
    const body = await res.text();
    const events = body.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    assert.equal(events.at(-1), "[DONE]");
    for (const e of events.slice(0, -1)) text += JSON.parse(e).choices[0].text;
  }
  if (!expected.has(prompt)) expected.set(prompt, text);
  assert.equal(text, expected.get(prompt), `answer to "${prompt}" (stream ${stream})`);
  return "ok";
}

async function expectError(promise, status) {
  const res = await promise;
  assert.equal(res.status, status);
  const j = await res.json();
  assert.equal(typeof j.error.message, "string");
}

// Starts a long stream and reads its first chunk; the returned function
// hangs up.
async function startHangUp(prompt) {
  const controller = new AbortController();
  const res = await post("/v1/completions", { prompt, max_tokens: 480, ignore_eos: true, stream: true },
                         { signal: controller.signal });
  assert.equal(res.status, 200, "the server is idle when a round starts");
  const reader = res.body.getReader();
  await reader.read();
  return async () => {
    controller.abort();
    await reader.read().catch(() => {});
  };
}

async function round() {
  // Clients that will hang up mid-stream hold running slots while the flood comes.
  const hangUps = await Promise.all(prompts.slice(0, 2).map(startHangUp));
  const jobs = [];
  for (let i = 0; i < FLOOD; ++i) jobs.push(completion(prompts[i % prompts.length], i % 2 === 1));
  for (let i = 0; i < 3; ++i) {
    jobs.push(expectError(post("/v1/chat/completions", '{"messages": [{"role": "user", "content": "Hi"}'), 400));
    jobs.push(expectError(post("/v1/completions", { prompt: ["a", 1, {}] }), 400));
    jobs.push(expectError(post("/v1/completions", { prompt: "Hi", temperature: "warm" }), 400));
    jobs.push(expectError(post("/v1/completions", { prompt: "x".repeat(100 * 1024) }), 413));
    jobs.push(expectError(post("/v1/completions", { model: "no-such-model", prompt: "Hi" }), 404));
  }
  await new Promise((r) => setTimeout(r, 5));
  jobs.push(...hangUps.map((hangUp) => hangUp()));
  const results = await Promise.all(jobs);
  return results.filter((r) => r === "ok").length;
}

async function settle() {
  // Cancelled and finished requests leave the engine at its next step.
  let text = "";
  for (let i = 0; i < 200; ++i) {
    text = await (await fetch(server.url + "/metrics")).text();
    if (metric(text, "loom_kv_cache_blocks_used") === 0 && metric(text, "loom_requests_generating") === 0 &&
        metric(text, "loom_requests_running") === 0 && metric(text, "loom_requests_waiting") === 0) return text;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail("KV blocks or requests still in use after the round:\n" + text);
}

test("stays up, answers correctly, frees everything, keeps its memory", async () => {
  // Warm-up: reference answers, then one full round so allocator pools,
  // thread stacks and compiled graphs reach their steady size.
  for (const p of prompts) assert.equal(await completion(p, false), "ok");
  await round();
  await settle();
  const rssWarm = server.rssKb();

  let answered = 0;
  for (let r = 0; r < ROUNDS; ++r) {
    const before = metric(await (await fetch(server.url + "/metrics")).text(), "loom_client_disconnects_total");
    answered += await round();
    const m = await settle();
    assert.ok(metric(m, "loom_client_disconnects_total") > before, "hang-ups are noticed and counted");
  }
  assert.ok(answered >= ROUNDS * (PARALLEL + QUEUE) / 2, `only ${answered} requests were answered`);
  assert.ok(server.alive(), "the server is still running");
  assert.equal((await fetch(server.url + "/health")).status, 200);
  const rssEnd = server.rssKb();
  assert.ok(rssEnd <= rssWarm * 1.1, `RSS grew from ${rssWarm} kB to ${rssEnd} kB`);
  console.log(`answered ${answered} of ${ROUNDS * FLOOD}, RSS ${rssWarm} -> ${rssEnd} kB`);
});
