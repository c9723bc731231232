package main

// The tests call the handler directly (no socket, no network, no .env), signing requests with a fresh
// secret of their own.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The example request of docs/plugin-authors.md section 3.3, as it comes on the wire.
const exampleID = "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33"
const exampleBody = `{"data":{"response":{"answers":{"crop":{"choice":"maize"},"farm":{"accuracy_m":4.5,"latitude":-1.29,"longitude":36.82},"income":null,"name":{"text":"Amina Njeri"},"notes":{"text":"Good harvest this year"}},"collector_id":"enumerator-42","duration_ms":93000,"form_id":"f-household-2026","form_version":1,"id":"r-0193a5b2","locale":"sw-KE","submitted_at":1795341600000,"team_id":"acme"}},"datacontenttype":"application/json","id":"0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33","source":"/collect/web","specversion":"1.0","subject":"f-household-2026","teamid":"acme","time":"2026-11-22T10:00:00Z","type":"response.submitted"}`

type harness struct {
	t       *testing.T
	plugin  *Plugin
	webhook *standardwebhooks.Webhook
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	manifest, err := os.ReadFile("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := NewPlugin(secret, manifest)
	if err != nil {
		t.Fatal(err)
	}
	webhook, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t, plugin, webhook}
}

// request builds a POST signed now with the harness's secret.
func (h *harness) request(path, msgID, contentType, body string) *http.Request {
	return h.requestAt(path, msgID, contentType, body, time.Now())
}

func (h *harness) requestAt(path, msgID, contentType, body string, at time.Time) *http.Request {
	h.t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("content-type", contentType)
	r.Header.Set("switchyard-team", "acme")
	signature, err := h.webhook.Sign(msgID, at, []byte(body))
	if err != nil {
		h.t.Fatal(err)
	}
	r.Header.Set("webhook-id", msgID)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	r.Header.Set("webhook-signature", signature)
	return r
}

// serve runs one request and checks the status and the content type.
func (h *harness) serve(r *http.Request, wantStatus int) []byte {
	h.t.Helper()
	w := httptest.NewRecorder()
	h.plugin.ServeHTTP(w, r)
	if w.Code != wantStatus {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", r.Method, r.URL.Path, w.Code, wantStatus, w.Body)
	}
	if got := w.Header().Get("content-type"); got != "application/json" {
		h.t.Fatalf("%s %s: content-type %q", r.Method, r.URL.Path, got)
	}
	return w.Body.Bytes()
}

func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var value map[string]any
	if err := json.Unmarshal(body, &value); err != nil {
		t.Fatalf("not a JSON object: %s", body)
	}
	return value
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("bad expectation %s", want)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if !bytes.Equal(ga, gb) {
		t.Fatalf("got  %s\nwant %s", ga, gb)
	}
}

func TestStandardWebhooksTestVector(t *testing.T) {
	webhook, err := standardwebhooks.NewWebhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"email":"test@example.com","username":"test_user"}`)
	signature, err := webhook.Sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", time.Unix(1649367553, 0), body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="; signature != want {
		t.Fatalf("signature %s, want %s", signature, want)
	}
	// The signed example of section 3.3 verifies too (with the clock check off: it is old).
	header := http.Header{}
	header.Set("webhook-id", exampleID)
	header.Set("webhook-timestamp", "1795341601")
	header.Set("webhook-signature", "v1,vhMWcUuA276yLUBPWwxnwIpLU5TCw524wnPaNI/JwN8=")
	if err := webhook.VerifyIgnoringTimestamp([]byte(exampleBody), header); err != nil {
		t.Fatalf("the example of section 3.3 does not verify: %v", err)
	}
}

func TestUnsignedWrongAndStaleCallsAreRefused(t *testing.T) {
	h := newHarness(t)
	unsigned := httptest.NewRequest(http.MethodPost, "/execute", strings.NewReader(exampleBody))
	refused := decode(t, h.serve(unsigned, http.StatusUnauthorized))
	if !strings.Contains(refused["error"].(string), "missing") {
		t.Fatalf("unsigned: %v", refused)
	}

	wrong := h.request("/execute", exampleID, "application/json", exampleBody)
	wrong.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	h.serve(wrong, http.StatusUnauthorized)

	stale := h.requestAt("/execute", exampleID, "application/json", exampleBody, time.Now().Add(-10*time.Minute))
	refused = decode(t, h.serve(stale, http.StatusUnauthorized))
	if !strings.Contains(refused["error"].(string), "5 minutes") {
		t.Fatalf("stale: %v", refused)
	}

	// Actions and /initialize are verified too; the refused calls did no work.
	h.serve(httptest.NewRequest(http.MethodPost, "/actions/stats", nil), http.StatusUnauthorized)
	h.serve(httptest.NewRequest(http.MethodPost, "/initialize", strings.NewReader(`{"team_id":"acme","config":null}`)), http.StatusUnauthorized)
	stats := decode(t, h.serve(h.request("/actions/stats", "msg_1", "application/json", "{}"), http.StatusOK))
	if stats["events"] != 0.0 {
		t.Fatalf("refused calls were executed: %v", stats)
	}
}

func TestResponseSubmittedIsGreeted(t *testing.T) {
	h := newHarness(t)
	body := h.serve(h.request("/execute", exampleID, "application/json", exampleBody), http.StatusOK)
	jsonEqual(t, body, `{"results": [{"type": "`+pluginID+`.greeted", "subject": "r-0193a5b2",
		"data": {"response_id": "r-0193a5b2", "form_id": "f-household-2026", "greeting": "Hello r-0193a5b2", "answers": 5}}]}`)
}

func TestRepeatedWebhookIDGetsTheSameAnswer(t *testing.T) {
	h := newHarness(t)
	first := h.serve(h.request("/execute", exampleID, "application/json", exampleBody), http.StatusOK)
	// A new greeting would change the answer if the event were handled again.
	h.serve(h.request("/initialize", "init_1", "application/json", `{"team_id":"acme","config":{"greeting":"Hi"}}`), http.StatusOK)
	second := h.serve(h.request("/execute", exampleID, "application/json", exampleBody), http.StatusOK)
	if !bytes.Equal(first, second) {
		t.Fatalf("first %s\nsecond %s", first, second)
	}
	jsonEqual(t, h.serve(h.request("/actions/stats", "msg_2", "application/json", "{}"), http.StatusOK),
		`{"team_id": "acme", "events": 1, "greeted": 1, "configured": true}`)
}

func TestBatchOfTwoEvents(t *testing.T) {
	h := newHarness(t)
	second := `{"specversion":"1.0","id":"ev-2","source":"/forms","type":"form.created","teamid":"acme","subject":"f-1","data":{"form":{"id":"f-1"}}}`
	batch := "[" + exampleBody + "," + second + "]"
	body := h.serve(h.request("/execute", "batch_0123456789abcdef0123456789abcdef", batchContentType, batch), http.StatusOK)
	want := `{"events": [
		{"id": "` + exampleID + `", "outcome": "done", "results": [{"type": "` + pluginID + `.greeted", "subject": "r-0193a5b2",
			"data": {"response_id": "r-0193a5b2", "form_id": "f-household-2026", "greeting": "Hello r-0193a5b2", "answers": 5}}]},
		{"id": "ev-2", "outcome": "done", "results": []}]}`
	jsonEqual(t, body, want)

	// The same events again, in another batch with a malformed element: de-duplicated per event id.
	again := h.serve(h.request("/execute", "batch_ffff", batchContentType+"; charset=utf-8", "["+second+`,{"type":"x"},`+exampleBody+"]"), http.StatusOK)
	events := decode(t, again)["events"].([]any)
	if len(events) != 3 || events[1].(map[string]any)["outcome"] != "dead_letter" {
		t.Fatalf("second batch: %s", again)
	}
	jsonEqual(t, h.serve(h.request("/actions/stats", "msg_3", "application/json", "{}"), http.StatusOK),
		`{"team_id": "acme", "events": 2, "greeted": 1, "configured": false}`)

	// A batch body that is not an array dead-letters the whole batch.
	jsonEqual(t, h.serve(h.request("/execute", "batch_0", batchContentType, `{"id":"x"}`), http.StatusOK),
		`{"outcome": "dead_letter", "reason": "the body is not a JSON array of events"}`)
}

func TestInitialize(t *testing.T) {
	h := newHarness(t)
	refused := h.serve(h.request("/initialize", "init_1", "application/json", `{"team_id":"acme","config":{"greeting":5}}`), http.StatusUnprocessableEntity)
	jsonEqual(t, refused, `{"error": "greeting must be a string"}`)

	for i := 0; i < 2; i++ { // idempotent
		ok := h.serve(h.request("/initialize", "init_2", "application/json", `{"team_id":"acme","config":{"greeting":"Hi","api_key":"k"}}`), http.StatusOK)
		jsonEqual(t, ok, `{}`)
	}
	body := h.serve(h.request("/execute", exampleID, "application/json", exampleBody), http.StatusOK)
	if !strings.Contains(string(body), `"greeting":"Hi r-0193a5b2"`) {
		t.Fatalf("the configured greeting is not used: %s", body)
	}
	// A named installation has its own config; null removes a config.
	h.serve(h.request("/initialize", "init_3", "application/json", `{"team_id":"acme","installation":"second","config":{"greeting":"Hey"}}`), http.StatusOK)
	h.serve(h.request("/initialize", "init_4", "application/json", `{"team_id":"acme","config":null}`), http.StatusOK)
	stats := decode(t, h.serve(h.request("/actions/stats", "msg_4", "application/json", ""), http.StatusOK))
	if stats["configured"] != false {
		t.Fatalf("config not removed: %v", stats)
	}
	named := strings.Replace(strings.Replace(exampleBody, `"id":"`+exampleID, `"id":"ev-9`, 1),
		`"source"`, `"installation":"second","source"`, 1)
	body = h.serve(h.request("/execute", "ev-9/second", "application/json", named), http.StatusOK)
	if !strings.Contains(string(body), `"greeting":"Hey r-0193a5b2"`) {
		t.Fatalf("the installation's greeting is not used: %s", body)
	}
}

func TestOtherEventsAndMalformedBodies(t *testing.T) {
	h := newHarness(t)
	formCreated := `{"specversion":"1.0","id":"ev-1","type":"form.created","teamid":"acme","data":{}}`
	jsonEqual(t, h.serve(h.request("/execute", "ev-1", "application/json", formCreated), http.StatusOK), `{"results": []}`)

	for id, body := range map[string]string{"m-1": "not json", "m-2": `{"type":"response.submitted"}`, "m-3": `{"id":"m-3","type":"response.updated","data":{}}`} {
		answer := decode(t, h.serve(h.request("/execute", id, "application/json", body), http.StatusOK))
		if answer["outcome"] != "dead_letter" || answer["reason"] == "" {
			t.Fatalf("%s: %v", body, answer)
		}
	}
}

func TestRoutes(t *testing.T) {
	h := newHarness(t)
	manifest, _ := os.ReadFile("manifest.json")
	body := h.serve(httptest.NewRequest(http.MethodGet, "/metadata", nil), http.StatusOK)
	if !bytes.Equal(body, manifest) {
		t.Fatal("GET /metadata does not serve manifest.json verbatim")
	}
	var parsed struct {
		ID      string   `json:"id"`
		Actions []string `json:"actions"`
	}
	if err := json.Unmarshal(manifest, &parsed); err != nil || parsed.ID != pluginID || len(parsed.Actions) != 1 || parsed.Actions[0] != "stats" {
		t.Fatalf("manifest.json: %+v %v", parsed, err)
	}
	h.serve(httptest.NewRequest(http.MethodPost, "/metadata", nil), http.StatusMethodNotAllowed)
	h.serve(httptest.NewRequest(http.MethodGet, "/execute", nil), http.StatusMethodNotAllowed)
	h.serve(httptest.NewRequest(http.MethodGet, "/nowhere", nil), http.StatusNotFound)
	h.serve(h.request("/actions/unknown", "msg_5", "application/json", "{}"), http.StatusNotFound)
}

func TestLoadDotEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	content := "# a comment\nPLUGIN_TEST_NEW=whsec_abc=\nPLUGIN_TEST_SET=from-file\n\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PLUGIN_TEST_SET", "from-env")
	t.Cleanup(func() { os.Unsetenv("PLUGIN_TEST_NEW") })
	if err := loadDotEnv(path); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("PLUGIN_TEST_NEW"); got != "whsec_abc=" {
		t.Fatalf("PLUGIN_TEST_NEW=%q", got)
	}
	if got := os.Getenv("PLUGIN_TEST_SET"); got != "from-env" {
		t.Fatalf("the environment was overridden: %q", got)
	}
	if err := loadDotEnv(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatal(err)
	}
}
