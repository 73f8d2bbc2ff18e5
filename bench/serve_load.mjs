#!/usr/bin/env node
// Load benchmark of `loom serve` (not a test: it prints figures). Starts the
// server on a model of at least 100 MB and measures, over HTTP with
// streaming completions:
//   1. aggregate generation throughput of 8 concurrent clients vs 1 client
//      (what continuous batching buys);
//   2. time to first token of a short request while another client's long
//      prompt is being prefilled (what chunked prefill buys), vs on an idle
//      server;
//   3. time to first token with a 500-token shared prefix (a system prompt),
//      cold and then served from the prefix cache.
//
//   node bench/serve_load.mjs [--loom build/bin/loom] [--model FILE] [--threads N]
//                             [--tokens 64] [--clients 8] [--long-prompt 1536] [--prefix 500] [--ctx-size 2048]
// Without --model it uses the synthetic qwen2.5-0.5b Q8_0 model (~0.5 GB),
// writing it once with `loom bench --synthetic` (into ~/.cache/loom/synthetic).
// Needs only Node.js 18+ (fetch); no npm packages.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const loom = args.loom ?? join(root, "build/bin/loom");
const clients = Number(args.clients ?? 8);
const genTokens = Number(args.tokens ?? 64);
const longPrompt = Number(args["long-prompt"] ?? 1536);
const prefixTokens = Number(args.prefix ?? 500);
const ctxSize = Number(args["ctx-size"] ?? 2048);

function syntheticModel() {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const path = join(cache, "loom/synthetic/qwen2.5-0.5b-q8_0.gguf");
  if (!existsSync(path)) {
    console.error(`writing ${path} with loom bench --synthetic (once)...`);
    const r = spawnSync(loom, ["bench", "--synthetic", "qwen2.5-0.5b", "--type", "q8_0", "-p", "8", "-n", "2", "-r", "1"],
                        { stdio: ["ignore", "ignore", "inherit"] });
    if (r.status !== 0 || !existsSync(path)) throw new Error("could not create the synthetic model");
  }
  return path;
}

const model = args.model ?? syntheticModel();
if (!existsSync(loom)) throw new Error(`${loom} not found; build first (make build) or pass --loom`);

// Token ids rather than text, so prompt lengths are exact whatever the
// vocabulary (ids 300..499 exist in every model loom runs).
const ids = (n, seed) => Array.from({ length: n }, (_, i) => 300 + ((i * 7 + seed * 13) % 200));

async function startServer() {
  const serveArgs = ["serve", "-m", model, "--port", "0", "--parallel", String(clients), "--ctx-size", String(ctxSize),
                     "--queue", "64", "--quiet"];
  if (args.threads) serveArgs.push("--threads", args.threads);
  const proc = spawn(loom, serveArgs, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const port = await new Promise((ok, fail) => {
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on http:\/\/[^ ]*:(\d+)/.exec(out);
      if (m) ok(Number(m[1]));
    });
    proc.on("exit", (code) => fail(new Error(`loom serve exited (${code})`)));
  });
  return { proc, url: `http://127.0.0.1:${port}` };
}

// One streaming completion; returns seconds to the first token, total
// seconds, tokens generated and prompt tokens served from the cache.
async function complete(url, prompt, maxTokens) {
  const start = performance.now();
  const res = await fetch(url + "/v1/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true,
                           stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = "", first = 0, usage = null;
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const ev = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const chunk = JSON.parse(ev.slice(6));
      if (chunk.usage) usage = chunk.usage;
      if (!first && chunk.choices.length) first = performance.now();
    }
  }
  const end = performance.now();
  return { ttft: (first - start) / 1000, seconds: (end - start) / 1000, tokens: usage.completion_tokens,
           cached: usage.prompt_tokens_details?.cached_tokens ?? 0 };
}

const fmt = (x, d = 1) => x.toFixed(d);
const ms = (s) => `${fmt(s * 1000, 0)} ms`;

const { proc, url } = await startServer();
try {
  console.log(`loom serve load bench: ${model}`);
  await complete(url, ids(16, 0), 8);  // warm-up: graphs compiled, pages mapped

  // 1. Throughput: 1 client, then `clients` at once.
  const one = await complete(url, ids(16, 1), genTokens);
  const t0 = performance.now();
  const many = await Promise.all(Array.from({ length: clients }, (_, i) => complete(url, ids(16, 100 + i), genTokens)));
  const wall = (performance.now() - t0) / 1000;
  const total = many.reduce((s, r) => s + r.tokens, 0);
  const single = one.tokens / one.seconds, aggregate = total / wall;
  console.log(`throughput: 1 client ${fmt(single)} tok/s; ${clients} clients ${fmt(aggregate)} tok/s aggregate ` +
              `(${fmt(aggregate / single, 2)}x), ${fmt(total / clients / wall)} tok/s each`);

  // 2. TTFT of a short request alone, then while a long prompt prefills.
  const alone = await complete(url, ids(16, 2), 4);
  const long = complete(url, ids(longPrompt, 3), 4);
  await new Promise((r) => setTimeout(r, 50));  // the long prompt is being prefilled now
  const during = await complete(url, ids(16, 4), 4);
  const longDone = await long;
  console.log(`TTFT of a 16-token request: idle ${ms(alone.ttft)}; during a ${longPrompt}-token prefill ` +
              `${ms(during.ttft)} (the long prompt's own TTFT ${ms(longDone.ttft)})`);

  // 3. Prefix cache: a 500-token shared system prompt, then a different question.
  const prefix = ids(prefixTokens, 5);
  const cold = await complete(url, [...prefix, ...ids(20, 6)], 4);
  const warm = await complete(url, [...prefix, ...ids(20, 7)], 4);
  console.log(`TTFT with a ${prefixTokens}-token shared prefix: cold ${ms(cold.ttft)} (${cold.cached} cached), ` +
              `warm ${ms(warm.ttft)} (${warm.cached} cached tokens), ${fmt(cold.ttft / warm.ttft, 1)}x faster`);

  const metrics = await (await fetch(url + "/metrics")).text();
  const hit = /^loom_prefix_cache_hit_tokens_total (\S+)$/m.exec(metrics);
  console.log(`prefix-cache hit tokens (metrics): ${hit ? hit[1] : "?"}`);
} finally {
  proc.kill("SIGTERM");
}
