package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/goipa/goipa/download"
)

// API microversions the agent asks for, capped by what the server offers
// (spec 2.2 and 2.4).
const (
	lookupVersion    = "1.62" // agent token
	heartbeatVersion = "1.68" // agent_verify_ca
	versionHeader    = "X-OpenStack-Ironic-API-Version"
	requestIDHeader  = "X-OpenStack-Request-ID"
)

// microversion is an Ironic API version "1.N".
type microversion struct{ major, minor int }

func parseMicroversion(s string) (microversion, error) {
	maj, min, ok := strings.Cut(strings.TrimSpace(s), ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
		return microversion{}, fmt.Errorf("%q is not an API version like 1.68", s)
	}
	return microversion{a, b}, nil
}

func (v microversion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v microversion) less(o microversion) bool {
	return v.major < o.major || (v.major == o.major && v.minor < o.minor)
}

// atLeast reports whether v >= s (s a constant like "1.68").
func (v microversion) atLeast(s string) bool {
	o, _ := parseMicroversion(s)
	return !v.less(o)
}

// capped returns min(v, s).
func (v microversion) capped(s string) string {
	o, _ := parseMicroversion(s)
	if v.less(o) {
		return v.String()
	}
	return o.String()
}

// IronicError is a non-success answer from Ironic's API.
type IronicError struct {
	Op          string
	Status      int
	FaultString string // Ironic's faultstring, unpacked from error_message
}

func (e *IronicError) Error() string {
	if e.FaultString == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.FaultString)
}

// tokenWiped reports whether Ironic refused a heartbeat because the
// operation ended and it wiped the node's token (notes pitfall 13).
func (e *IronicError) tokenWiped() bool {
	return e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.FaultString), "agent token")
}

// ironicClient talks to Ironic's ramdisk endpoints.
type ironicClient struct {
	http      *http.Client
	requestID string
}

func newIronicClient(cfg *Config) (*ironicClient, error) {
	opts := []download.Option{download.WithCA(cfg.CAFile), download.WithInsecure(cfg.Insecure)}
	if !cfg.ListenTLS {
		opts = append(opts, download.WithClientCert(cfg.CertFile, cfg.KeyFile))
	}
	timeout := cfg.HTTPTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	client, err := download.NewClient(append(opts, download.WithTimeout(timeout), download.WithRequestTimeout(timeout))...)
	if err != nil {
		return nil, fmt.Errorf("the client for Ironic (ipa-cafile, ipa-certfile, ipa-keyfile): %w", err)
	}
	return &ironicClient{http: client, requestID: cfg.GlobalRequestID}, nil
}

func (c *ironicClient) do(ctx context.Context, op, method, u, version string, body any, out any, want ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if version != "" {
		req.Header.Set(versionHeader, version)
	}
	if c.requestID != "" {
		req.Header.Set(requestIDHeader, c.requestID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return &IronicError{Op: op, Status: resp.StatusCode, FaultString: faultString(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: malformed answer: %w", op, err)
		}
	}
	return nil
}

// faultString digs the faultstring out of Ironic's error body, whose
// error_message is itself a JSON string (spec 12.16).
func faultString(body []byte) string {
	var outer struct {
		ErrorMessage json.RawMessage `json:"error_message"`
		FaultString  string          `json:"faultstring"`
	}
	if json.Unmarshal(body, &outer) != nil {
		return strings.TrimSpace(string(body))
	}
	if outer.FaultString != "" {
		return outer.FaultString
	}
	var inner string
	if json.Unmarshal(outer.ErrorMessage, &inner) == nil {
		var fault struct {
			FaultString string `json:"faultstring"`
		}
		if json.Unmarshal([]byte(inner), &fault) == nil && fault.FaultString != "" {
			return fault.FaultString
		}
		return inner
	}
	var obj struct {
		FaultString string `json:"faultstring"`
	}
	if json.Unmarshal(outer.ErrorMessage, &obj) == nil && obj.FaultString != "" {
		return obj.FaultString
	}
	return strings.TrimSpace(string(body))
}

// discoverVersion asks Ironic for its newest API version (GET /).
func (c *ironicClient) discoverVersion(ctx context.Context, base string) (microversion, error) {
	var root struct {
		DefaultVersion struct {
			Version string `json:"version"`
		} `json:"default_version"`
	}
	if err := c.do(ctx, "version discovery", http.MethodGet, strings.TrimRight(base, "/")+"/", "", nil, &root, http.StatusOK); err != nil {
		return microversion{}, err
	}
	return parseMicroversion(root.DefaultVersion.Version)
}

// LookupResult is Ironic's answer to a lookup.
type LookupResult struct {
	Node   map[string]any `json:"node"`
	Config map[string]any `json:"config"`
}

// NodeUUID returns the node's UUID, or "".
func (l *LookupResult) NodeUUID() string {
	s, _ := l.Node["uuid"].(string)
	return s
}

func (c *ironicClient) lookup(ctx context.Context, base string, v microversion, macs []string, nodeUUID string) (*LookupResult, error) {
	q := url.Values{}
	q.Set("addresses", strings.Join(macs, ","))
	if nodeUUID != "" {
		q.Set("node_uuid", nodeUUID)
	}
	var res LookupResult
	u := strings.TrimRight(base, "/") + "/v1/lookup?" + q.Encode()
	if err := c.do(ctx, "lookup", http.MethodGet, u, v.capped(lookupVersion), nil, &res, http.StatusOK); err != nil {
		return nil, err
	}
	if res.NodeUUID() == "" {
		return nil, errors.New("lookup: answer has no node uuid")
	}
	return &res, nil
}

// heartbeatBody holds what IPA sends; fields are left out below the API
// version that knows them, since Ironic rejects unknown fields.
func heartbeatBody(v microversion, callbackURL, token, agentVersion, verifyCA string) map[string]any {
	body := map[string]any{"callback_url": callbackURL}
	if v.atLeast("1.62") {
		body["agent_token"] = token
	}
	if v.atLeast("1.36") {
		body["agent_version"] = agentVersion
	}
	if v.atLeast("1.68") && verifyCA != "" {
		body["agent_verify_ca"] = verifyCA
	}
	return body
}

func (c *ironicClient) heartbeat(ctx context.Context, base string, v microversion, nodeUUID string, body map[string]any) error {
	u := strings.TrimRight(base, "/") + "/v1/heartbeat/" + url.PathEscape(nodeUUID)
	return c.do(ctx, "heartbeat", http.MethodPost, u, v.capped(heartbeatVersion), body, nil, http.StatusAccepted, http.StatusOK, http.StatusNoContent)
}

// postJSON sends an inspection payload (no version header: the callback
// is API 1.1 to Ironic, and plain to ironic-inspector).
func (c *ironicClient) postJSON(ctx context.Context, op, u string, body any, out any) error {
	return c.do(ctx, op, http.MethodPost, u, "", body, out, http.StatusOK, http.StatusAccepted, http.StatusCreated)
}
