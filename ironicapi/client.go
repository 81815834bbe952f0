package ironicapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Headers Ironic reads.
const (
	VersionHeader   = "X-OpenStack-Ironic-API-Version"
	RequestIDHeader = "X-OpenStack-Request-ID"
)

// maxAnswer bounds what is read of an answer: Ironic's largest (a lookup
// with the node's properties) is far below it.
const maxAnswer = 16 << 20

// Error is a non-success answer from Ironic's API.
type Error struct {
	Op          string
	Status      int
	FaultString string // Ironic's faultstring, unpacked from error_message
}

func (e *Error) Error() string {
	if e.FaultString == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.FaultString)
}

// Client sends JSON requests to Ironic.
type Client struct {
	HTTP      *http.Client
	RequestID string // sent as X-OpenStack-Request-ID when set
}

// Do sends body (JSON, when not nil) to url with method and, when
// version is set, the microversion header, and decodes the answer into
// out (when not nil). An answer whose status is not one of want is an
// *Error carrying Ironic's faultstring; op names the request in errors.
func (c *Client) Do(ctx context.Context, op, method, url, version string, body, out any, want ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if version != "" {
		req.Header.Set(VersionHeader, version)
	}
	if c.RequestID != "" {
		req.Header.Set(RequestIDHeader, c.RequestID)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return &Error{Op: op, Status: resp.StatusCode, FaultString: FaultString(data)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: malformed answer: %w", op, err)
		}
	}
	return nil
}

// FaultString digs the faultstring out of Ironic's error body, whose
// error_message is itself a JSON string (spec 12.16); a body that is not
// JSON comes back as its text.
func FaultString(body []byte) string {
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
