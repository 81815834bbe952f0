package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/goipa/goipa/burnin"
)

// burninNetwork is burnin_network: a pair of nodes stream to each other
// for agent_burnin_fio_network_runtime seconds (6 hours) in each
// direction, first in this node's role, then in the other. The pair is
// static, agent_burnin_fio_network_config {"role", "partner"} (goipa also
// reads "port", 9000 by default, where each node listens while it
// writes); IPA's dynamic pairing through a tooz backend is not
// supported. agent_burnin_fio_network_pairing_timeout (900 s), IPA's
// wait for a partner when pairing, bounds each direction's wait for the
// partner here. The result (and agent_burnin_fio_network_outputfile
// plus ".writer" and ".reader", as IPA names fio's output) holds each
// direction's throughput and errors.
func (a *Agent) burninNetwork(ctx context.Context, sc *StepCall) (any, error) {
	di := nodeDriverInfo(sc.Node)
	secs, err := di.int("agent_burnin_fio_network_runtime", 21600)
	if err != nil {
		return nil, err
	}
	out, err := di.str("agent_burnin_fio_network_outputfile", "")
	if err != nil {
		return nil, err
	}
	wait, err := di.int("agent_burnin_fio_network_pairing_timeout", 900)
	if err != nil {
		return nil, err
	}
	cfg, err := networkBurninConfig(di)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		backend, err := di.str("agent_burnin_fio_network_pairing_backend_url", "")
		if err != nil {
			return nil, err
		}
		if backend == "" {
			return nil, errors.New("fio (network): dynamic pairing config is missing agent_burnin_fio_network_pairing_backend_url")
		}
		return nil, fmt.Errorf("fio (network): dynamic pairing through a tooz backend (agent_burnin_fio_network_pairing_backend_url=%s) is not supported by goipa; pair the nodes with agent_burnin_fio_network_config {\"role\": \"writer\"|\"reader\", \"partner\": HOST}", backend)
	}
	role, _ := cfg["role"].(string)
	if role != string(burnin.Writer) && role != string(burnin.Reader) {
		return nil, fmt.Errorf("fio (network) found an unknown role: %v", cfg["role"])
	}
	partner, _ := cfg["partner"].(string)
	if partner == "" {
		return nil, errors.New("fio (network) failed to find partner")
	}
	port, err := driverInfo(cfg).int("port", burnin.DefaultNetworkPort)
	if err != nil || port < 1 || port > 65535 {
		return nil, ErrInvalidParams("driver_info.agent_burnin_fio_network_config port %v is not a TCP port", cfg["port"])
	}
	if secs == 0 {
		return nil, ErrInvalidParams("driver_info.agent_burnin_fio_network_runtime must be at least 1 second")
	}
	sc.Log.Info("network burn-in", "partner", partner, "role", role, "port", port, "runtime_seconds", secs)
	results, err := burnin.Network(ctx, burnin.NetworkOptions{
		Role:           burnin.NetworkRole(role),
		Partner:        partner,
		Listen:         ":" + strconv.Itoa(port),
		Runtime:        time.Duration(secs) * time.Second,
		PartnerTimeout: time.Duration(wait) * time.Second,
	})
	for _, r := range results {
		sc.Log.Info("network burn-in direction", "role", r.Role, "partner", r.Partner, "streams", r.Streams, "bytes", r.Bytes, "seconds", r.Seconds, "mbit_per_second", r.MbitPerSecond, "errors", r.Errors)
		if out != "" {
			b, _ := json.MarshalIndent(r, "", "  ")
			if werr := os.WriteFile(out+"."+string(r.Role), append(b, '\n'), 0o644); werr != nil {
				sc.Log.Warn("burn-in output file", "path", out+"."+string(r.Role), "error", werr)
			}
		}
	}
	if err != nil {
		return nil, &Error{Type: "CommandExecutionError", Code: 500, Message: "Error while executing command", Details: err.Error()}
	}
	return map[string]any{"directions": results}, nil
}

// networkBurninConfig reads agent_burnin_fio_network_config: a JSON
// object, or its text when set as a string from the command line.
func networkBurninConfig(di driverInfo) (map[string]any, error) {
	switch v := di["agent_burnin_fio_network_config"].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if len(v) == 0 {
			return nil, nil
		}
		return v, nil
	case string:
		if v == "" {
			return nil, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, ErrInvalidParams("driver_info.agent_burnin_fio_network_config is not a JSON object: %v", err)
		}
		return m, nil
	}
	return nil, ErrInvalidParams("driver_info.agent_burnin_fio_network_config=%v is not an object", di["agent_burnin_fio_network_config"])
}
