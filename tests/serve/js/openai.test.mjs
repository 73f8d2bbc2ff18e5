// The official openai npm client against loom serve (default model): chat,
// streamed chat, completions, and a json_schema response that must parse
// and validate against its schema.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Ajv from "ajv";
import { startServe } from "./serve.mjs";

let server, client;
before(async () => {
  server = await startServe(["--api-key", "sk-test"]);
  client = new OpenAI({ apiKey: "sk-test", baseURL: server.url + "/v1", maxRetries: 0 });
});
after(async () => { await server.stop(); });

const messages = [{ role: "user", content: "Once upon a time" }];

test("models lists the served model", async () => {
  const page = await client.models.list();
  assert.deepEqual(page.data.map((m) => m.id), ["default"]);
});

test("chat completion", async () => {
  const r = await client.chat.completions.create({ model: "default", messages, max_tokens: 16, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 16);
});

test("streamed chat equals the whole answer", async () => {
  const whole = await client.chat.completions.create({ model: "default", messages, max_tokens: 24, temperature: 0 });
  const stream = await client.chat.completions.create({
    model: "default", messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "", role = null, finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    ++chunks;
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    const c = chunk.choices[0];
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 24);
  assert.ok(chunks >= 24);
});

test("completion", async () => {
  const r = await client.completions.create({ model: "default", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.completion_tokens, 12);
});

test("json_schema response parses and validates", async () => {
  const schema = {
    type: "object",
    properties: { name: { type: "string", maxLength: 24 }, age: { type: "integer" } },
    required: ["name", "age"],
    additionalProperties: false,
  };
  const r = await client.chat.completions.create({
    model: "default", messages, max_tokens: 400, temperature: 0,
    response_format: { type: "json_schema", json_schema: { name: "person", strict: true, schema } },
  });
  assert.equal(r.choices[0].finish_reason, "stop", r.choices[0].message.content);
  const value = JSON.parse(r.choices[0].message.content);
  const validate = new Ajv().compile(schema);
  assert.ok(validate(value), JSON.stringify(validate.errors));
});

test("errors come back as the client's error classes", async () => {
  await assert.rejects(client.chat.completions.create({ model: "gpt-4o", messages }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, "model_not_found");
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: "default", messages, n: 2 }), OpenAI.BadRequestError);
  const wrong = new OpenAI({ apiKey: "sk-wrong", baseURL: server.url + "/v1", maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create({ model: "default", messages }), OpenAI.AuthenticationError);
});
