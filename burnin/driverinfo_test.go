package burnin

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDriverInfoReads(t *testing.T) {
	di := DriverInfo{"n": 4.0, "ns": "7", "neg": -1.0, "frac": 1.5, "word": "x", "t": true, "ts": "true", "bad": []any{}, "obj": map[string]any{"a": 1.0}, "objs": `{"a": 1}`, "nojson": "{a", "empty": ""}
	for _, tc := range []struct {
		name    string
		read    func() (any, error)
		want    any
		wantErr string
	}{
		{"int from a number", func() (any, error) { return di.Int("n", 0) }, 4, ""},
		{"int from a string", func() (any, error) { return di.Int("ns", 0) }, 7, ""},
		{"int absent: default", func() (any, error) { return di.Int("none", 9) }, 9, ""},
		{"int negative", func() (any, error) { return di.Int("neg", 0) }, nil, "driver_info.neg=-1 is not a whole number >= 0"},
		{"int fraction", func() (any, error) { return di.Int("frac", 0) }, nil, "is not a whole number"},
		{"int word", func() (any, error) { return di.Int("word", 0) }, nil, "is not a whole number"},
		{"text", func() (any, error) { return di.Text("word", "") }, "x", ""},
		{"text from a number", func() (any, error) { return di.Text("frac", "") }, "1.5", ""},
		{"text absent: default", func() (any, error) { return di.Text("none", "98%") }, "98%", ""},
		{"text list", func() (any, error) { return di.Text("bad", "") }, nil, "is not a string"},
		{"bool", func() (any, error) { return di.Bool("t") }, true, ""},
		{"bool from a string", func() (any, error) { return di.Bool("ts") }, true, ""},
		{"bool absent", func() (any, error) { return di.Bool("none") }, false, ""},
		{"bool word", func() (any, error) { return di.Bool("word") }, nil, "is not a boolean"},
		{"object", func() (any, error) { return di.Object("obj") }, map[string]any{"a": 1.0}, ""},
		{"object from its text", func() (any, error) { return di.Object("objs") }, map[string]any{"a": 1.0}, ""},
		{"object empty string: none", func() (any, error) { return di.Object("empty") }, map[string]any(nil), ""},
		{"object bad text", func() (any, error) { return di.Object("nojson") }, nil, "is not a JSON object"},
		{"object list", func() (any, error) { return di.Object("bad") }, nil, "is not an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read()
			if tc.wantErr != "" {
				var pe *ParamError
				require.True(t, errors.As(err, &pe), "%v is a ParamError", err)
				assert.Contains(t, pe.Msg, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestNetworkOptionsFrom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		di       DriverInfo
		want     NetworkOptions
		paramErr bool
		wantErr  string
		wantOut  string
	}{
		{name: "static pair with defaults", di: DriverInfo{"agent_burnin_fio_network_config": map[string]any{"role": "writer", "partner": "10.0.0.2"}},
			want: NetworkOptions{Role: Writer, Partner: "10.0.0.2", Listen: ":9000", Runtime: 6 * time.Hour, PartnerTimeout: 900 * time.Second}},
		{name: "config as text, port, runtime, output", di: DriverInfo{"agent_burnin_fio_network_config": `{"role": "reader", "partner": "h", "port": "9100"}`, "agent_burnin_fio_network_runtime": 5.0, "agent_burnin_fio_network_pairing_timeout": "3", "agent_burnin_fio_network_outputfile": "/tmp/o"},
			want: NetworkOptions{Role: Reader, Partner: "h", Listen: ":9100", Runtime: 5 * time.Second, PartnerTimeout: 3 * time.Second}, wantOut: "/tmp/o"},
		{name: "no config, no backend", di: DriverInfo{}, wantErr: "dynamic pairing config is missing agent_burnin_fio_network_pairing_backend_url"},
		{name: "tooz backend", di: DriverInfo{"agent_burnin_fio_network_pairing_backend_url": "etcd3+http://10.0.0.1:2379"}, wantErr: "not supported by goipa"},
		{name: "unknown role", di: DriverInfo{"agent_burnin_fio_network_config": map[string]any{"role": "talker", "partner": "x"}}, wantErr: "unknown role: talker"},
		{name: "no partner", di: DriverInfo{"agent_burnin_fio_network_config": `{"role": "reader"}`}, wantErr: "failed to find partner"},
		{name: "bad JSON", di: DriverInfo{"agent_burnin_fio_network_config": "{role"}, paramErr: true, wantErr: "not a JSON object"},
		{name: "port out of range", di: DriverInfo{"agent_burnin_fio_network_config": map[string]any{"role": "reader", "partner": "x", "port": 70000.0}}, paramErr: true, wantErr: "not a TCP port"},
		{name: "zero runtime", di: DriverInfo{"agent_burnin_fio_network_runtime": 0.0, "agent_burnin_fio_network_config": map[string]any{"role": "reader", "partner": "x"}}, paramErr: true, wantErr: "at least 1 second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, out, err := networkOptionsFrom(tc.di)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				var pe *ParamError
				assert.Equal(t, tc.paramErr, errors.As(err, &pe), "ParamError")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, o)
			assert.Equal(t, tc.wantOut, out)
		})
	}
}

func TestReadDiskOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		di      DriverInfo
		want    DiskOptions
		wantErr string
	}{
		{name: "defaults", di: DriverInfo{}, want: DiskOptions{Loops: 4}},
		{name: "set", di: DriverInfo{"agent_burnin_fio_disk_loops": "2", "agent_burnin_fio_disk_runtime": 30.0, "agent_burnin_fio_disk_outputfile": "/tmp/d"}, want: DiskOptions{Loops: 2, Runtime: 30 * time.Second, OutputFile: "/tmp/d"}},
		{name: "SMART self-test refused", di: DriverInfo{"agent_burnin_fio_disk_smart_test": true}, wantErr: "no SMART self-test"},
		{name: "bad loops", di: DriverInfo{"agent_burnin_fio_disk_loops": "many"}, wantErr: "not a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ReadDiskOptions(tc.di)
			if tc.wantErr != "" {
				var pe *ParamError
				require.True(t, errors.As(err, &pe), "%v", err)
				assert.Contains(t, pe.Msg, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, o)
		})
	}
}
