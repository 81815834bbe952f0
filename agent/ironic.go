package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goipa/goipa/download"
	"github.com/goipa/goipa/ironicapi"
)

// API microversions the agent asks for, capped by what the server offers
// (spec 2.2 and 2.4).
const (
	lookupVersion    = "1.62" // agent token
	heartbeatVersion = "1.68" // agent_verify_ca
	versionHeader    = ironicapi.VersionHeader
)

// microversion is an Ironic API version "1.N".
type microversion = ironicapi.Version

var parseMicroversion = ironicapi.ParseVersion

// IronicError is a non-success answer from Ironic's API.
type IronicError = ironicapi.Error

// tokenWiped reports whether Ironic refused a heartbeat because the
// operation ended and it wiped the node's token (notes pitfall 13).
func tokenWiped(e *IronicError) bool {
	return e.Status == http.StatusBadRequest && strings.Contains(strings.ToLower(e.FaultString), "agent token")
}

// ironicClient talks to Ironic's ramdisk endpoints.
type ironicClient struct{ api ironicapi.Client }

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
	return &ironicClient{api: ironicapi.Client{HTTP: client, RequestID: cfg.GlobalRequestID}}, nil
}

// discoverVersion asks Ironic for its newest API version (GET /).
func (c *ironicClient) discoverVersion(ctx context.Context, base string) (microversion, error) {
	var root struct {
		DefaultVersion struct {
			Version string `json:"version"`
		} `json:"default_version"`
	}
	if err := c.api.Do(ctx, "version discovery", http.MethodGet, strings.TrimRight(base, "/")+"/", "", nil, &root, http.StatusOK); err != nil {
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
	if err := c.api.Do(ctx, "lookup", http.MethodGet, u, v.Capped(lookupVersion), nil, &res, http.StatusOK); err != nil {
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
	if v.AtLeast("1.62") {
		body["agent_token"] = token
	}
	if v.AtLeast("1.36") {
		body["agent_version"] = agentVersion
	}
	if v.AtLeast("1.68") && verifyCA != "" {
		body["agent_verify_ca"] = verifyCA
	}
	return body
}

func (c *ironicClient) heartbeat(ctx context.Context, base string, v microversion, nodeUUID string, body map[string]any) error {
	u := strings.TrimRight(base, "/") + "/v1/heartbeat/" + url.PathEscape(nodeUUID)
	return c.api.Do(ctx, "heartbeat", http.MethodPost, u, v.Capped(heartbeatVersion), body, nil, http.StatusAccepted, http.StatusOK, http.StatusNoContent)
}

// postJSON sends an inspection payload (no version header: the callback
// is API 1.1 to Ironic, and plain to ironic-inspector).
func (c *ironicClient) postJSON(ctx context.Context, op, u string, body any, out any) error {
	return c.api.Do(ctx, op, http.MethodPost, u, "", body, out, http.StatusOK, http.StatusAccepted, http.StatusCreated)
}
