// Unit tests: `npm test` (node --test). No network and no .env needed: the tests sign with a secret of
// their own and call the handler directly (one test goes through a real server on a free local port).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { createHttpServer, createPlugin, loadManifest } from "../plugin.js";

const SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const signer = new Webhook(SECRET);
const RESULT_TYPE = "__PLUGIN_ID__.greeted";

function newPlugin() {
  return createPlugin({ secret: SECRET, manifest: loadManifest() });
}

// A signed POST, as the bridge sends it.
function post(plugin, path, body, { id = `msg_${randomBytes(8).toString("hex")}`, headers = {}, age = 0 } = {}) {
  const bytes = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  const timestamp = Math.floor(Date.now() / 1000) - age;
  const signed = {
    "content-type": "application/json",
    "switchyard-team": "acme",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signer.sign(id, new Date(timestamp * 1000), bytes),
    ...headers,
  };
  return plugin.handle({ method: "POST", path, headers: signed, body: bytes });
}

function event(id, type = "response.submitted", responseId = "r-0193a5b2") {
  return {
    data: {
      response: {
        answers: { crop: { choice: "maize" }, income: null, name: { text: "Amina Njeri" } },
        form_id: "f-household-2026",
        id: responseId,
        team_id: "acme",
      },
    },
    datacontenttype: "application/json",
    id,
    source: "/collect/web",
    specversion: "1.0",
    subject: "f-household-2026",
    teamid: "acme",
    type,
  };
}

const greeted = (responseId, greeting = "Hello") => ({
  type: RESULT_TYPE,
  subject: responseId,
  data: { response_id: responseId, form_id: "f-household-2026", greeting: `${greeting} ${responseId}`, answers: 3 },
});

test("the Standard Webhooks test vector", () => {
  const wh = new Webhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
  const body = Buffer.from('{"email":"test@example.com","username":"test_user"}');
  assert.equal(
    wh.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", new Date(1649367553 * 1000), body),
    "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
  );
});

test("an unsigned call is refused with 401", () => {
  const plugin = newPlugin();
  const answer = plugin.handle({
    method: "POST",
    path: "/execute",
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify(event("e-1"))),
  });
  assert.equal(answer.status, 401);
  assert.match(answer.body.error, /webhook-id/);
});

test("a wrong signature and a stale timestamp are refused with 401", () => {
  const plugin = newPlugin();
  const forged = post(plugin, "/execute", event("e-1"), { headers: { "webhook-signature": "v1,AAAA" } });
  assert.equal(forged.status, 401);
  const stale = post(plugin, "/execute", event("e-2"), { age: 600 });
  assert.equal(stale.status, 401);
  assert.match(stale.body.error, /too old/);
});

test("a signed response.submitted is answered with the greeting", () => {
  const answer = post(newPlugin(), "/execute", event("e-1"), { id: "e-1" });
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.body, { results: [greeted("r-0193a5b2")] });
});

test("other event types get no results, a body without id is dead-lettered", () => {
  const plugin = newPlugin();
  assert.deepEqual(post(plugin, "/execute", event("e-1", "form.created")).body, { results: [] });
  const bad = post(plugin, "/execute", { type: "response.submitted" });
  assert.equal(bad.status, 200);
  assert.equal(bad.body.outcome, "dead_letter");
  assert.equal(post(plugin, "/execute", "not json").body.outcome, "dead_letter");
});

test("the same webhook-id twice gets the same answer, and the work is done once", () => {
  const plugin = newPlugin();
  const first = post(plugin, "/execute", event("e-1"), { id: "e-1" });
  // The config changes in between: a repeat must still get the answer already given.
  post(plugin, "/initialize", { team_id: "acme", config: { greeting: "Hi" } });
  const again = post(plugin, "/execute", event("e-1"), { id: "e-1" });
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, first.body);
  const stats = post(plugin, "/actions/stats", {});
  assert.deepEqual(stats.body, { team_id: "acme", events: 1, greeted: 1, configured: true });
});

test("a batch of two events, de-duplicated per event", () => {
  const plugin = newPlugin();
  const batch = [event("e-1"), event("e-2", "response.updated", "r-2")];
  const headers = { "content-type": "application/cloudevents-batch+json" };
  const answer = post(plugin, "/execute", batch, { id: "batch_0001", headers });
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.body, {
    events: [
      { id: "e-1", outcome: "done", results: [greeted("r-0193a5b2")] },
      { id: "e-2", outcome: "done", results: [greeted("r-2")] },
    ],
  });
  // e-2 again, in another batch with a malformed element: done once, answered the same.
  const next = post(plugin, "/execute", [batch[1], { type: "form.created" }], { id: "batch_0002", headers });
  assert.deepEqual(next.body.events[0], answer.body.events[1]);
  assert.equal(next.body.events[1].outcome, "dead_letter");
  assert.equal(post(plugin, "/actions/stats", {}).body.events, 2);
});

test("/initialize refuses a greeting that is not a string, and applies a good one", () => {
  const plugin = newPlugin();
  const refused = post(plugin, "/initialize", { team_id: "acme", config: { greeting: 5 } });
  assert.equal(refused.status, 422);
  assert.deepEqual(refused.body, { error: "greeting must be a string" });

  assert.equal(post(plugin, "/initialize", { team_id: "acme", config: { greeting: "Habari" } }).status, 200);
  assert.equal(post(plugin, "/initialize", { team_id: "acme", config: { greeting: "Habari" } }).status, 200);
  assert.deepEqual(post(plugin, "/execute", event("e-1")).body, { results: [greeted("r-0193a5b2", "Habari")] });

  assert.equal(post(plugin, "/initialize", { team_id: "acme", config: null }).status, 200);
  assert.deepEqual(post(plugin, "/execute", event("e-2")).body, { results: [greeted("r-0193a5b2")] });
  assert.equal(post(plugin, "/actions/stats", {}).body.configured, false);
});

test("over HTTP: /metadata, 404, 405 and a signed /execute", async (t) => {
  const server = createHttpServer(newPlugin(), { log: () => {} });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;

  const metadata = await fetch(`${base}/metadata`);
  assert.equal(metadata.status, 200);
  assert.equal(metadata.headers.get("content-type"), "application/json");
  assert.deepEqual(Buffer.from(await metadata.arrayBuffer()), loadManifest());

  assert.equal((await fetch(`${base}/nowhere`)).status, 404);
  assert.equal((await fetch(`${base}/execute`)).status, 405);

  const body = JSON.stringify(event("e-1"));
  const timestamp = Math.floor(Date.now() / 1000);
  const answer = await fetch(`${base}/execute`, {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": "e-1",
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signer.sign("e-1", new Date(timestamp * 1000), body),
    },
  });
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { results: [greeted("r-0193a5b2")] });
});
