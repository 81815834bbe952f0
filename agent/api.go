package agent

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goipa/goipa/httpserve"
)

// MaxRequestBody bounds a POST body: a 64 MiB config drive arrives
// base64-encoded inside the JSON.
const MaxRequestBody = 128 << 20

// largeBody is the size from which a body waits for its turn: one large
// body is read and decoded at a time, so parallel config drives cost no
// more memory than one. Every command but prepare_image's config drive
// (and inject_files' contents) fits far below it.
const largeBody = 1 << 20

// largeBodyWait bounds how long a large body waits for the one before it.
const largeBodyWait = 60 * time.Second

// tokenChecker is the part of the agent the API asks about tokens.
type tokenChecker interface {
	// checkToken reports whether a request carrying token (present says
	// whether the query parameter was there at all) may go on.
	checkToken(token string, present bool, isGet bool) bool
}

// apiServer serves IPA's REST API.
type apiServer struct {
	log    *slog.Logger
	cmds   *Manager
	tokens tokenChecker
	status func() map[string]any
	mux    *http.ServeMux
	bodies *httpserve.Bodies // one large body at a time
	// guarded is mux behind a recover (a bug in a handler must never take
	// the agent down) and a request log.
	guarded http.Handler
}

func newAPIServer(log *slog.Logger, cmds *Manager, tokens tokenChecker, status func() map[string]any, m *metrics) *apiServer {
	s := &apiServer{log: log, cmds: cmds, tokens: tokens, status: status, mux: http.NewServeMux(),
		bodies: httpserve.NewBodies(MaxRequestBody, largeBody, largeBodyWait)}
	for _, prefix := range []string{"/v1", ""} {
		s.mux.HandleFunc(prefix+"/status", s.method(s.handleStatus, http.MethodGet))
		s.mux.HandleFunc(prefix+"/status/", s.method(s.handleStatus, http.MethodGet))
		s.mux.HandleFunc(prefix+"/commands", s.method(s.handleCommands, http.MethodGet, http.MethodPost))
		s.mux.HandleFunc(prefix+"/commands/", s.handleCommandsSubtree)
	}
	s.mux.HandleFunc("/v1", s.method(s.handleV1, http.MethodGet))
	s.mux.HandleFunc("/v1/", s.method(s.handleV1, http.MethodGet))
	s.mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", s.handleRoot)
	s.guarded = httpserve.Guard{Log: log, RequestIDHeader: "X-Openstack-Request-Id", OnPanic: func(w http.ResponseWriter, p any) {
		writeFault(w, http.StatusInternalServerError, fmt.Sprintf("Internal error: %v", p))
	}}.Wrap(s.mux)
	return s
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.guarded.ServeHTTP(w, r) }

// method rejects other HTTP methods with IPA's 405.
func (s *apiServer) method(h http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range allowed {
			if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeFault(w, http.StatusMethodNotAllowed, "405 Method Not Allowed: The method is not allowed for the requested URL.")
	}
}

func rootURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func v1Doc(root string) map[string]any {
	return map[string]any{
		"id": "v1",
		"links": []map[string]any{
			{"href": root + "/v1", "rel": "self"},
			{"href": "https://docs.openstack.org/ironic-python-agent/", "rel": "describedby", "type": "text/html"},
		},
	}
}

func (s *apiServer) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeFault(w, http.StatusNotFound, "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeFault(w, http.StatusMethodNotAllowed, "405 Method Not Allowed: The method is not allowed for the requested URL.")
		return
	}
	root := rootURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"name":            "OpenStack Ironic Python Agent API",
		"description":     "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
		"versions":        []any{v1Doc(root)},
		"default_version": v1Doc(root),
	})
}

func (s *apiServer) handleV1(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1" && r.URL.Path != "/v1/" {
		writeFault(w, http.StatusNotFound, "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
		return
	}
	root := rootURL(r)
	doc := v1Doc(root)
	doc["commands"] = []map[string]any{{"href": root + "/v1/commands", "rel": "self"}, {"href": root + "/commands", "rel": "bookmark"}}
	doc["status"] = []map[string]any{{"href": root + "/v1/status", "rel": "self"}, {"href": root + "/status", "rel": "bookmark"}}
	doc["media_types"] = []map[string]any{{"base": "application/json", "type": "application/vnd.openstack.ironic-python-agent.v1+json"}}
	writeJSON(w, http.StatusOK, doc)
}

func (s *apiServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func (s *apiServer) handleCommandsSubtree(w http.ResponseWriter, r *http.Request) {
	_, id, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1"), "/commands/")
	id = strings.Trim(id, "/")
	if id == "" {
		s.method(s.handleCommands, http.MethodGet, http.MethodPost)(w, r)
		return
	}
	s.method(func(w http.ResponseWriter, r *http.Request) { s.handleCommand(w, r, id) }, http.MethodGet)(w, r)
}

func (s *apiServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	token, present := q.Get("agent_token"), q.Has("agent_token")
	if s.tokens.checkToken(token, present, r.Method != http.MethodPost) {
		return true
	}
	writeFault(w, http.StatusUnauthorized, "401 Unauthorized: Token invalid.")
	return false
}

func waitRequested(r *http.Request) bool {
	return strings.EqualFold(r.URL.Query().Get("wait"), "true")
}

func (s *apiServer) handleCommands(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusOK, map[string]any{"commands": s.cmds.Results()})
		return
	}
	req, ok := s.readCommand(w, r)
	if !ok {
		return
	}
	res, err := s.cmds.Execute(*req.Name, req.Params)
	// The body's decoded form now belongs to the command (or is garbage):
	// the next large body may come in.
	req.release()
	if err != nil {
		writeAgentError(w, asAgentError(err))
		return
	}
	if waitRequested(r) {
		if err := res.Wait(r.Context()); err != nil {
			return // the client went away
		}
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *apiServer) handleCommand(w http.ResponseWriter, r *http.Request, id string) {
	if !s.authorized(w, r) {
		return
	}
	res, err := s.cmds.Get(id)
	if err != nil {
		writeAgentError(w, asAgentError(err))
		return
	}
	if waitRequested(r) {
		if err := res.Wait(r.Context()); err != nil {
			return
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// commandRequest is a POST /v1/commands body: decoded straight into the
// command's parameters; the raw body is dropped as soon as it is decoded.
type commandRequest struct {
	Name   *string        `json:"name"`
	Params map[string]any `json:"params"`
	// release gives back the large-body turn, when one was taken.
	release func() `json:"-"`
}

// readCommand reads and decodes a command body (httpserve.Bodies: size
// limit, one large body at a time, no trailing data), or answers the
// request with IPA's fault and reports false.
func (s *apiServer) readCommand(w http.ResponseWriter, r *http.Request) (commandRequest, bool) {
	var req commandRequest
	release, err := s.bodies.DecodeJSON(w, r, &req)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, httpserve.ErrTooLarge):
		writeFault(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("413 Request Entity Too Large: request body over %d bytes", MaxRequestBody))
	case errors.Is(err, httpserve.ErrBusy):
		writeFault(w, http.StatusServiceUnavailable, "503 Service Unavailable: another large request body is being read, try again later")
	case errors.Is(err, httpserve.ErrTrailingData):
		writeFault(w, http.StatusBadRequest, "400 Bad Request: unexpected data after the JSON object")
	case errors.As(err, &typeErr):
		writeFault(w, http.StatusBadRequest, "400 Bad Request: Missing or invalid name or params")
	case err != nil:
		writeFault(w, http.StatusBadRequest, "400 Bad Request: The browser (or proxy) sent a request that this server could not understand.")
	case req.Name == nil || req.Params == nil:
		release()
		writeFault(w, http.StatusBadRequest, "400 Bad Request: Missing or invalid name or params")
	default:
		req.release = release
		return req, true
	}
	return commandRequest{}, false
}

// writeAgentError answers with IPA's fault body for an agent error.
func writeAgentError(w http.ResponseWriter, e *Error) {
	code := e.Code
	if code < 400 || code > 599 {
		code = http.StatusInternalServerError
	}
	writeFault(w, code, e.Error())
}

// writeFault writes IPA's (WSME's) error body. Ironic substring-tests
// faultstring on every answer >= 400, so it is always a string.
func writeFault(w http.ResponseWriter, code int, faultstring string) {
	fc := "Client"
	if code >= 500 {
		fc = "Server"
	}
	writeJSON(w, code, map[string]any{"faultcode": fc, "faultstring": faultstring})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]any{"faultcode": "Server", "faultstring": "could not encode the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// tokenEqual compares tokens in constant time.
func tokenEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
