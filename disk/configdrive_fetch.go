package disk

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// FetchConfigDrive turns Ironic's config drive string into the ISO's
// bytes, as IPA does: an http(s) URL is fetched with the client
// newClient makes (the agent's download client with its CA, proxies and
// timeouts; made only for a URL) and read bounded (ReadConfigDrive);
// anything else is base64 of a gzipped ISO or, when it does not decode,
// the bytes as they are (DecodeConfigDrive checks them). Errors about
// the drive itself are *ConfigDriveError.
func FetchConfigDrive(ctx context.Context, s string, newClient func() (*http.Client, error)) ([]byte, error) {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			data = []byte(s)
		}
		return DecodeConfigDrive(data)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s, nil)
	if err != nil {
		return nil, configDriveError("config drive URL %q: %v", s, err)
	}
	client, err := newClient()
	if err != nil {
		return nil, fmt.Errorf("downloading the config drive: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading the config drive: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("downloading the config drive: HTTP %d", resp.StatusCode)
	}
	// Streamed and bounded: a server that sends too much, a gzip bomb or
	// base64 of either costs at most the drive's own size in memory.
	iso, err := ReadConfigDrive(resp.Body)
	var bad *ConfigDriveError
	if err != nil && !errors.As(err, &bad) {
		return nil, fmt.Errorf("downloading the config drive: %w", err)
	}
	return iso, err
}
