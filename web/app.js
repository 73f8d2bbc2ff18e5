// loom's chat page: keeps the conversation, sends it to /v1/chat/completions
// with stream: true, and reads the server-sent events as they arrive (fetch +
// a small SSE parser; no framework, nothing loaded from the network).
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), input = $("input"), status = $("status");
let messages = [];      // the conversation: {role, content}
let controller = null;  // aborts the answer being streamed

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const body = document.createElement("span");
  body.className = "content";
  body.textContent = text;
  div.appendChild(body);
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// Yields the JSON payload of every `data:` event of an SSE response body
// until `data: [DONE]`. Comment lines (": keep-alive") are skipped.
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
}

async function send(text) {
  messages.push({ role: "user", content: text });
  addMessage("user", text);
  const div = addMessage("assistant", "");
  const content = div.querySelector(".content");
  const stats = document.createElement("span");
  stats.className = "stats";
  div.appendChild(stats);

  const system = $("system").value.trim();
  const request = {
    model: $("model").dataset.id || undefined,
    messages: system ? [{ role: "system", content: system }, ...messages] : messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
  };
  controller = new AbortController();
  setBusy(true);
  status.textContent = "waiting for the first token...";
  const start = performance.now();
  let first = 0, tokens = 0, answer = "", failed = false;
  const show = () => {
    const now = performance.now();
    const rate = tokens > 1 && now > first ? ((tokens - 1) * 1000) / (now - first) : 0;
    stats.textContent = `${tokens} tokens · ${rate.toFixed(1)} tokens/s · first token ${((first - start) / 1000).toFixed(2)} s`;
  };
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(request), signal: controller.signal,
    });
    if (!res.ok) {
      let message = res.status + " " + res.statusText, code = null;
      try { ({ message, code } = (await res.json()).error); } catch (_) {}
      if (code === "context_length_exceeded") message += " Lower max tokens, or start a new chat.";
      throw new Error(message);
    }
    for await (const chunk of sseEvents(res.body)) {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        if (!first) first = performance.now();
        if (!chunk.usage) tokens += 1;
        answer += delta.content;
        content.textContent = answer;
        show();
        log.scrollTop = log.scrollHeight;
      }
    }
    show();
    status.textContent = "";
  } catch (e) {
    if (e.name === "AbortError") {
      status.textContent = "stopped";
    } else {
      failed = true;
      div.classList.add("error");
      content.textContent = answer + (answer ? "\n" : "") + "error: " + e.message;
      status.textContent = "";
    }
  } finally {
    // A turn that failed is not part of the conversation; a stopped one is, as far as it got.
    if (failed) messages.pop();
    else messages.push({ role: "assistant", content: answer });
    controller = null;
    setBusy(false);
    input.focus();
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  send(text);
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("form").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("reset").addEventListener("click", () => {
  if (controller) controller.abort();
  messages = [];
  log.textContent = "";
  input.focus();
});
$("settings-toggle").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
$("api-key").value = localStorage.getItem("loom-api-key") || "";
$("api-key").addEventListener("change", () => localStorage.setItem("loom-api-key", $("api-key").value.trim()));

fetch("/v1/models", { headers: headers() })
  .then((r) => r.json())
  .then((j) => {
    const m = j.data && j.data[0];
    if (m) { $("model").textContent = m.id; $("model").dataset.id = m.id; }
  })
  .catch(() => {});
