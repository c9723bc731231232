// __PLUGIN_NAME__: the plugin's logic, for Switchyard's HTTP contract v1
// (docs/plugin-authors.md in the Switchyard repository, sections 3 to 5).
//
// `createPlugin(...).handle(request)` takes a plain request object and returns a plain answer, so the
// unit tests call it without a socket; `createHttpServer` wires it to node:http.

import { readFileSync } from "node:fs";
import http from "node:http";
import { Webhook } from "standardwebhooks";

export const PLUGIN_ID = "__PLUGIN_ID__";
const RESULT_TYPE = `${PLUGIN_ID}.greeted`;
const DEFAULT_GREETING = "Hello";
const MAX_BODY_BYTES = 10 * 1024 * 1024; // the bridge's batches stay far below this
const MAX_REMEMBERED = 10_000; // answers kept for de-duplication (section 5)
const BATCH_TYPE = "application/cloudevents-batch+json";

/** The bytes of manifest.json (next to this file), served verbatim by GET /metadata. */
export function loadManifest() {
  const bytes = readFileSync(new URL("./manifest.json", import.meta.url));
  JSON.parse(bytes.toString("utf8")); // fail at start, not at the first /metadata, if it is broken
  return bytes;
}

/**
 * secret: the plugin's signing secret (`whsec_...`); manifest: the bytes of manifest.json.
 * Returns { handle({method, path, headers, body}) -> {status, body, headers?} } where `headers` has
 * lower-case names (as node:http gives them), `body` of the request is a Buffer, and `body` of the answer
 * is a Buffer (sent as is) or a value sent as JSON.
 */
export function createPlugin({ secret, manifest }) {
  const webhook = new Webhook(secret); // throws if the secret is not `whsec_<base64>`

  // All state is in memory: it is lost on restart and not shared between replicas (see `remember`).
  const configs = new Map(); // "team\0installation" -> config object
  const stats = new Map(); // team -> {events, greeted}
  const answers = new Map(); // delivery id (webhook-id) -> the answer body given, oldest first

  const configKey = (team, installation) => `${team}\u0000${installation || "default"}`;

  // Idempotency (section 5): delivery is at least once, so the same event can come again (a retry after a
  // timeout, a redelivery after a restart). A repeated delivery id gets the answer already given, without
  // doing the work again, so the bridge publishes the same results with the same ids.
  // Every answer remembered here was a 200 (done or dead_letter), so the body is all there is to keep; do
  // not remember a 503 you add for a passing problem: its retry must do the work.
  // PRODUCTION: this map lives in one process and is forgotten on restart. Keep the answers in storage that
  // all replicas share (a table with a unique key on the id), written together with the work's own effects.
  function remember(id, work) {
    const known = answers.get(id);
    if (known) return known;
    const answer = work();
    answers.set(id, answer);
    if (answers.size > MAX_REMEMBERED) answers.delete(answers.keys().next().value); // drop the oldest
    return answer;
  }

  // Standard Webhooks v1 over the raw body bytes (section 4). Returns what was wrong, or null.
  function verify(headers, body) {
    const signed = {
      "webhook-id": headers["webhook-id"],
      "webhook-timestamp": headers["webhook-timestamp"],
      "webhook-signature": headers["webhook-signature"],
    };
    if (!signed["webhook-id"] || !signed["webhook-timestamp"] || !signed["webhook-signature"]) {
      return "missing webhook-id, webhook-timestamp or webhook-signature header";
    }
    try {
      // Checks the timestamp (+-5 minutes) and every `v1,` entry in constant time. jsonParse: false,
      // because the body is parsed by us, after this, and a non-JSON body is not a signature problem.
      webhook.verify(body, signed, { jsonParse: false });
      return null;
    } catch (err) {
      return `signature check failed: ${err.message}`;
    }
  }

  function countFor(team) {
    let s = stats.get(team);
    if (!s) stats.set(team, (s = { events: 0, greeted: 0 }));
    return s;
  }

  // The work for one event. Returns the single-event answer body: {results: [...]} or
  // {outcome: "dead_letter", reason}.
  // Why 200 + dead_letter instead of a 4xx: the platform then dead-letters the event at once, without
  // retries, and says why. Only use it for events that can never succeed; for a passing problem (a
  // database down) answer 503 so the event is retried (section 3.5).
  function execute(event, headerTeam) {
    if (event === null || typeof event !== "object" || Array.isArray(event)) {
      return deadLetter("the event is not a JSON object");
    }
    if (typeof event.id !== "string" || event.id === "") return deadLetter("the event has no id");
    if (typeof event.type !== "string" || event.type === "") return deadLetter("the event has no type");
    const team = typeof event.teamid === "string" ? event.teamid : headerTeam || "";

    let results = [];
    if (event.type === "response.submitted" || event.type === "response.updated") {
      // Both carry {"response": {...}} (contract sections 5.5 and 5.6); read it tolerantly.
      const response = event.data?.response;
      if (!response || typeof response !== "object" || typeof response.id !== "string") {
        return deadLetter(`${event.type} without data.response.id`);
      }
      const config = configs.get(configKey(team, event.installation));
      const greeting = typeof config?.greeting === "string" ? config.greeting : DEFAULT_GREETING;
      const answered = response.answers && typeof response.answers === "object" ? response.answers : {};
      results = [
        {
          type: RESULT_TYPE,
          subject: response.id,
          data: {
            response_id: response.id,
            form_id: response.form_id,
            greeting: `${greeting} ${response.id}`,
            answers: Object.keys(answered).length,
          },
        },
      ];
      countFor(team).greeted += 1;
    }
    countFor(team).events += 1;
    return { results };
  }

  function initialize(body) {
    let request;
    try {
      request = JSON.parse(body.toString("utf8"));
    } catch {
      return json(422, { error: "the body is not JSON" });
    }
    if (!request || typeof request !== "object" || typeof request.team_id !== "string") {
      return json(422, { error: "team_id must be a string" });
    }
    const { team_id: team, installation, config } = request;
    const key = configKey(team, installation);
    if (config === null || config === undefined) {
      configs.delete(key); // the team's config was removed: back to the defaults
      return json(200, {});
    }
    if (typeof config !== "object" || Array.isArray(config)) {
      return json(422, { error: "config must be an object or null" });
    }
    // A 4xx here is final: the bridge dead-letters the team's events (config_rejected) until the config
    // changes, so refuse only what is really wrong. The registry already checked config_schema.
    if ("greeting" in config && typeof config.greeting !== "string") {
      return json(422, { error: "greeting must be a string" });
    }
    configs.set(key, config); // the same config again just replaces it: idempotent. Never log it.
    return json(200, {});
  }

  function executeCall(headers, body) {
    const contentType = (headers["content-type"] || "").split(";")[0].trim().toLowerCase();
    let parsed;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      parsed = undefined;
    }

    if (contentType !== BATCH_TYPE) {
      // One event. The webhook-id is the delivery id (the event id, or `<id>/<installation>`).
      const answer = remember(headers["webhook-id"], () =>
        parsed === undefined ? deadLetter("the body is not JSON") : execute(parsed, headers["switchyard-team"]),
      );
      return json(200, answer);
    }

    // A batch (section 3.7): this whole answer applies to every event of the batch.
    if (!Array.isArray(parsed)) return json(200, deadLetter("a batch must be a JSON array of events"));
    // De-duplicate per event, not on the batch's webhook-id: after a crash the same events come again in
    // other batches. An event's delivery id is its `id` (plus `/<installation>` for a named installation,
    // as the webhook-id of a single call), so a batch element and a single call of the same event match.
    const events = parsed.map((event) => {
      const id = event && typeof event === "object" && typeof event.id === "string" ? event.id : null;
      const answer =
        id === null
          ? execute(event, headers["switchyard-team"]) // malformed: a dead_letter, nothing to remember
          : remember(event.installation ? `${id}/${event.installation}` : id, () =>
              execute(event, headers["switchyard-team"]),
            );
      return answer.outcome === "dead_letter"
        ? { id, outcome: "dead_letter", reason: answer.reason }
        : { id, outcome: "done", results: answer.results };
    });
    return json(200, { events });
  }

  function action(name, headers) {
    if (name !== "stats") return json(404, { error: `no action ${name}` });
    // The registry's gateway puts the team in switchyard-team; the signature proves it checked that the
    // caller may act for that team (section 3.6).
    const team = headers["switchyard-team"];
    if (!team) return json(400, { error: "switchyard-team header is required" });
    const s = stats.get(team) || { events: 0, greeted: 0 };
    return json(200, {
      team_id: team,
      events: s.events,
      greeted: s.greeted,
      configured: configs.has(configKey(team, "default")),
    });
  }

  function handle({ method, path, headers = {}, body = Buffer.alloc(0) }) {
    if (path === "/metadata") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET");
      return { status: 200, body: manifest }; // the file's bytes, unchanged
    }
    const actionName = path.startsWith("/actions/") ? path.slice("/actions/".length) : null;
    if (path !== "/initialize" && path !== "/execute" && (!actionName || actionName.includes("/"))) {
      return json(404, { error: `no route ${path}` });
    }
    if (method !== "POST") return notAllowed("POST");

    // Every POST is verified before its body is even parsed: anyone who can reach this service could
    // otherwise feed it events and configs. A refusal is a 401, which the platform dead-letters without
    // retrying: right for a forged call, since a correctly deployed bridge always signs. If real calls get
    // 401s, this service holds the wrong secret, or its clock is off (section 4).
    const problem = verify(headers, body);
    if (problem) return json(401, { error: problem });

    if (path === "/initialize") return initialize(body);
    if (path === "/execute") return executeCall(headers, body);
    return action(actionName, headers);
  }

  return { handle };
}

/** A node:http server answering with `plugin.handle`. */
export function createHttpServer(plugin, { log = console.error } = {}) {
  return http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      let answer;
      try {
        answer = tooLarge
          ? json(413, { error: `the body is over ${MAX_BODY_BYTES} bytes` })
          : plugin.handle({
              method: req.method,
              path: new URL(req.url, "http://localhost").pathname,
              headers: req.headers,
              body: Buffer.concat(chunks),
            });
      } catch (err) {
        // A bug or a passing problem: a 5xx makes the platform retry the call later.
        log(`${req.method} ${req.url}: ${err.stack || err}`);
        answer = json(500, { error: "internal error" });
      }
      if (answer.status === 401) log(`${req.method} ${req.url}: 401 ${answer.body.error}`);
      const bytes = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(JSON.stringify(answer.body));
      res.writeHead(answer.status, {
        "content-type": "application/json",
        "content-length": bytes.length,
        ...answer.headers,
      });
      res.end(bytes);
    });
    req.on("error", () => res.destroy());
  });
}

function json(status, body) {
  return { status, body };
}

function notAllowed(allow) {
  return { status: 405, headers: { allow }, body: { error: `method not allowed, use ${allow}` } };
}

function deadLetter(reason) {
  return { outcome: "dead_letter", reason };
}
