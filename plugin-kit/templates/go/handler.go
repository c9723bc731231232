package main

// The plugin's HTTP contract (docs/plugin-authors.md sections 3 to 5 in the Switchyard repository):
// GET /metadata, POST /initialize, POST /execute (one event or a batch) and POST /actions/stats.
// Plugin is an http.Handler, so the unit tests call it without a socket.

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"mime"
	"net/http"
	"strings"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	pluginID        = "__PLUGIN_ID__"
	resultType      = pluginID + ".greeted"
	defaultGreeting = "Hello" // the registry does not apply the schema's defaults: we do
	// answersKept bounds the de-duplication memory: past it, the oldest answers are forgotten.
	answersKept = 10_000
	// maxBodyBytes caps a request body (a batch of up to 1000 events included).
	maxBodyBytes     = 16 << 20
	batchContentType = "application/cloudevents-batch+json"
)

// Result is one thing the plugin tells the core (section 3.4). The bridge publishes it to
// core.plugin-results as the CloudEvent type "switchyard.plugin.<Type>".
type Result struct {
	Type    string `json:"type"`
	Subject string `json:"subject,omitempty"`
	Data    any    `json:"data"`
}

type greeted struct {
	ResponseID string `json:"response_id"`
	FormID     string `json:"form_id"`
	Greeting   string `json:"greeting"`
	Answers    int    `json:"answers"`
}

// cloudEvent is the part of a CloudEvent (structured JSON, section 3.3) this plugin reads. Unknown
// fields are ignored, as the contract asks.
type cloudEvent struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	TeamID       string          `json:"teamid"`
	Installation string          `json:"installation"` // absent for the "default" installation
	Subject      string          `json:"subject"`      // the form id
	Data         json.RawMessage `json:"data"`
}

// responseData is the data of response.submitted and response.updated: both carry {"response": {...}}.
type responseData struct {
	Response *struct {
		ID      string                     `json:"id"`
		FormID  string                     `json:"form_id"`
		Answers map[string]json.RawMessage `json:"answers"`
	} `json:"response"`
}

// outcome is the answer given for one event: done with results, or dead-lettered with a reason.
type outcome struct {
	deadLetter string // non-empty: the event can never succeed, and this says why
	results    []Result
}

func deadLetter(reason string) outcome { return outcome{deadLetter: reason} }

type configKey struct{ team, installation string }

type teamStats struct{ events, greeted int }

// Plugin holds the plugin's state. Everything is in memory, so it is lost on restart and not shared
// between replicas: fine for a template, not for production (see remember).
type Plugin struct {
	webhook  *standardwebhooks.Webhook
	manifest []byte

	mu      sync.Mutex
	configs map[configKey]map[string]any // per (team, installation); never log them: they hold secrets
	answers map[string]outcome           // delivery id -> the answer already given
	order   []string                     // the keys of answers, oldest first
	stats   map[string]*teamStats        // per team
}

// NewPlugin checks the signing secret (whsec_<base64>) and keeps the manifest bytes to serve verbatim.
func NewPlugin(secret string, manifest []byte) (*Plugin, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, errors.New(`the signing secret must start with "whsec_"`)
	}
	webhook, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, errors.New("the signing secret is not whsec_ followed by base64")
	}
	return &Plugin{
		webhook:  webhook,
		manifest: manifest,
		configs:  map[configKey]map[string]any{},
		answers:  map[string]outcome{},
		stats:    map[string]*teamStats{},
	}, nil
}

func (p *Plugin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/metadata":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		// The manifest file's bytes, as they are (a signed manifest must stay byte for byte the same).
		w.Header().Set("content-type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(p.manifest)
	case path == "/initialize" || path == "/execute" || strings.HasPrefix(path, "/actions/"):
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		body, ok := p.verifiedBody(w, r)
		if !ok {
			return
		}
		switch path {
		case "/initialize":
			p.initialize(w, body)
		case "/execute":
			if isBatch(r.Header.Get("content-type")) {
				p.executeBatch(w, r, body)
			} else {
				p.executeOne(w, r, body)
			}
		case "/actions/stats":
			p.statsAction(w, r)
		default:
			writeJSON(w, http.StatusNotFound, errorBody("unknown action "+strings.TrimPrefix(path, "/actions/")))
		}
	default:
		writeJSON(w, http.StatusNotFound, errorBody("no such endpoint"))
	}
}

// verifiedBody reads the raw body and checks its Standard Webhooks signature BEFORE anything parses it.
// A failure is a 401: the bridge dead-letters the event without retrying, which is right for a forged
// call (a correctly deployed bridge always signs). If real events get 401s, the service holds the wrong
// secret or its clock is off: fix that, then replay the dead letters.
func (p *Plugin) verifiedBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody("the body is too large"))
		} else {
			writeJSON(w, http.StatusBadRequest, errorBody("the body could not be read"))
		}
		return nil, false
	}
	// Checks webhook-id, webhook-timestamp (+-5 minutes) and webhook-signature (any matching v1 entry,
	// compared in constant time) over the exact bytes received.
	if err := p.webhook.Verify(body, r.Header); err != nil {
		reason := whyRefused(err)
		log.Printf("refused %s %s: %s", r.Method, r.URL.Path, reason)
		writeJSON(w, http.StatusUnauthorized, errorBody(reason))
		return nil, false
	}
	return body, true
}

func whyRefused(err error) string {
	switch {
	case errors.Is(err, standardwebhooks.ErrRequiredHeaders):
		return "missing webhook-id, webhook-timestamp or webhook-signature header"
	case errors.Is(err, standardwebhooks.ErrInvalidHeaders):
		return "webhook-timestamp is not a Unix time in seconds"
	case errors.Is(err, standardwebhooks.ErrMessageTooOld), errors.Is(err, standardwebhooks.ErrMessageTooNew):
		return "webhook-timestamp is more than 5 minutes away from our clock"
	case errors.Is(err, standardwebhooks.ErrNoMatchingSignature):
		return "no v1 signature in webhook-signature matches"
	default:
		return "the signature could not be checked"
	}
}

// initialize stores a team's config (section 3.2). It is called again with the same config after every
// bridge restart, so it must be idempotent. A 4xx refuses the config for good (the team's events are
// dead-lettered as config_rejected until the config changes): only for configs that can never work.
func (p *Plugin) initialize(w http.ResponseWriter, body []byte) {
	var req struct {
		TeamID       string `json:"team_id"`
		Installation string `json:"installation"`
		Config       any    `json:"config"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("the body is not a JSON object with team_id and config"))
		return
	}
	if req.TeamID == "" {
		writeJSON(w, http.StatusUnprocessableEntity, errorBody("team_id is required"))
		return
	}
	key := configKey{req.TeamID, installationOrDefault(req.Installation)}
	switch config := req.Config.(type) {
	case nil: // the config was removed
		p.mu.Lock()
		delete(p.configs, key)
		p.mu.Unlock()
	case map[string]any:
		if greeting, present := config["greeting"]; present {
			if _, isString := greeting.(string); !isString {
				writeJSON(w, http.StatusUnprocessableEntity, errorBody("greeting must be a string"))
				return
			}
		}
		p.mu.Lock()
		p.configs[key] = config
		p.mu.Unlock()
	default:
		writeJSON(w, http.StatusUnprocessableEntity, errorBody("config must be an object or null"))
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// executeOne answers a single event (section 3.5). Problems with the event itself get a 200 with
// {"outcome": "dead_letter"}: the platform dead-letters it at once, without retries. Never answer a 4xx
// for a passing problem (a database down, an API rate limiting you): answer 503 with Retry-After (or 429)
// and the platform retries; a 4xx would dead-letter the event.
func (p *Plugin) executeOne(w http.ResponseWriter, r *http.Request, body []byte) {
	// webhook-id is the idempotency key: the same on every retry and redelivery of this event
	// (<event id>/<installation> for a named installation's copy). Verification made sure it is there.
	key := r.Header.Get("webhook-id")
	p.mu.Lock()
	out, seen := p.answers[key]
	if !seen {
		event, problem := parseEvent(body)
		if problem != "" {
			out = deadLetter(problem)
		} else {
			out = p.handle(event, r.Header.Get("switchyard-team"))
		}
		p.remember(key, out)
	}
	p.mu.Unlock()

	if out.deadLetter != "" {
		writeJSON(w, http.StatusOK, map[string]string{"outcome": "dead_letter", "reason": out.deadLetter})
		return
	}
	writeJSON(w, http.StatusOK, map[string][]Result{"results": nonNil(out.results)})
}

type batchEntry struct {
	ID      string `json:"id"` // always present, even "": an entry without id spoils the whole answer
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	Results any    `json:"results,omitempty"` // left out of dead_letter entries; [] when done without results
}

// executeBatch answers a batch (section 3.7): a JSON array of events, answered with one entry per event.
// It de-duplicates on each event's own id, not on the batch's webhook-id: after a crash the same events
// come again, but possibly grouped into other batches.
func (p *Plugin) executeBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	var elements []json.RawMessage
	if err := json.Unmarshal(body, &elements); err != nil {
		// Without "events" this applies to every event of the batch.
		writeJSON(w, http.StatusOK, map[string]string{"outcome": "dead_letter", "reason": "the body is not a JSON array of events"})
		return
	}
	entries := make([]batchEntry, 0, len(elements))
	p.mu.Lock()
	for _, element := range elements {
		event, problem := parseEvent(element)
		if problem != "" {
			entries = append(entries, batchEntry{ID: event.ID, Outcome: "dead_letter", Reason: problem})
			continue
		}
		// The same key as the webhook-id this event would have had on its own.
		key := event.ID
		if event.Installation != "" {
			key += "/" + event.Installation
		}
		out, seen := p.answers[key]
		if !seen {
			out = p.handle(event, r.Header.Get("switchyard-team"))
			p.remember(key, out)
		}
		if out.deadLetter != "" {
			entries = append(entries, batchEntry{ID: event.ID, Outcome: "dead_letter", Reason: out.deadLetter})
		} else {
			entries = append(entries, batchEntry{ID: event.ID, Outcome: "done", Results: nonNil(out.results)})
		}
	}
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string][]batchEntry{"events": entries})
}

// parseEvent decodes one CloudEvent; a non-empty problem means it can never be handled.
func parseEvent(raw []byte) (cloudEvent, string) {
	var event cloudEvent
	if err := json.Unmarshal(raw, &event); err != nil {
		return cloudEvent{}, "the event is not a CloudEvent in JSON: " + err.Error()
	}
	if event.ID == "" || event.Type == "" {
		return event, "the event has no id or no type"
	}
	return event, ""
}

// handle does the work for one event that was not answered before. The caller holds p.mu.
func (p *Plugin) handle(event cloudEvent, headerTeam string) outcome {
	team := event.TeamID
	if team == "" {
		team = headerTeam
	}
	p.teamStats(team).events++
	switch event.Type {
	case "response.submitted", "response.updated":
		var data responseData
		if err := json.Unmarshal(event.Data, &data); err != nil || data.Response == nil || data.Response.ID == "" {
			return deadLetter(event.Type + " without data.response.id")
		}
		response := data.Response
		greeting := defaultGreeting
		config := p.configs[configKey{team, installationOrDefault(event.Installation)}]
		if configured, ok := config["greeting"].(string); ok {
			greeting = configured
		}
		p.teamStats(team).greeted++
		return outcome{results: []Result{{
			Type:    resultType,
			Subject: response.ID,
			Data: greeted{
				ResponseID: response.ID,
				FormID:     response.FormID,
				Greeting:   greeting + " " + response.ID,
				Answers:    len(response.Answers),
			},
		}}}
	default:
		return outcome{}
	}
}

// remember stores an answer so that a repeated delivery gets it again without the work being redone
// (section 5: delivery is at least once). This memory is per process and bounded to the last answersKept
// answers: production needs storage shared by all replicas (a table with a unique key on the id, written
// in the same transaction as the work), which survives restarts.
func (p *Plugin) remember(key string, out outcome) {
	p.answers[key] = out
	p.order = append(p.order, key)
	if len(p.order) > answersKept {
		delete(p.answers, p.order[0])
		p.order = p.order[1:]
	}
}

// statsAction answers POST /actions/stats (section 3.6). The team comes from the switchyard-team header:
// the signature proves the registry checked that the caller may act for that team.
func (p *Plugin) statsAction(w http.ResponseWriter, r *http.Request) {
	team := r.Header.Get("switchyard-team")
	if team == "" {
		writeJSON(w, http.StatusBadRequest, errorBody("the switchyard-team header is required"))
		return
	}
	p.mu.Lock()
	stats := *p.teamStats(team)
	_, configured := p.configs[configKey{team, "default"}]
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		TeamID     string `json:"team_id"`
		Events     int    `json:"events"`
		Greeted    int    `json:"greeted"`
		Configured bool   `json:"configured"`
	}{team, stats.events, stats.greeted, configured})
}

// teamStats returns the team's counters, creating them. The caller holds p.mu.
func (p *Plugin) teamStats(team string) *teamStats {
	stats, ok := p.stats[team]
	if !ok {
		stats = &teamStats{}
		p.stats[team] = stats
	}
	return stats
}

func installationOrDefault(installation string) string {
	if installation == "" {
		return "default"
	}
	return installation
}

func isBatch(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.EqualFold(mediaType, batchContentType)
}

func nonNil(results []Result) []Result {
	if results == nil {
		return []Result{} // "results": [] rather than null
	}
	return results
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
}

func errorBody(message string) map[string]string { return map[string]string{"error": message} }

func methodNotAllowed(w http.ResponseWriter, allowed string) {
	w.Header().Set("allow", allowed)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody("method not allowed"))
}

// writeJSON writes every answer: all of them are application/json.
func writeJSON(w http.ResponseWriter, status int, value any) {
	body, err := json.Marshal(value)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
