package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics is what GET /metrics serves. Each agent has its own registry,
// so tests can run several agents in one process.
type metrics struct {
	registry        *prometheus.Registry
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	commandsRunning prometheus.Gauge
	heartbeats      *prometheus.CounterVec
	lookups         *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "goipa_commands_total", Help: "Commands executed, by command and final status.",
		}, []string{"command", "status"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "goipa_command_duration_seconds", Help: "Wall time of commands, by command.",
			Buckets: []float64{0.001, 0.01, 0.1, 1, 10, 60, 300, 1800, 7200},
		}, []string{"command"}),
		commandsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "goipa_commands_running", Help: "Commands running now (0 or 1).",
		}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "goipa_heartbeats_total", Help: "Heartbeats sent to Ironic, by outcome.",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "goipa_lookups_total", Help: "Lookups sent to Ironic, by outcome.",
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.commands, m.commandDuration, m.commandsRunning, m.heartbeats, m.lookups,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets the packages behind the steps (image, disk) add their
// byte counters and stage timings to what /metrics serves.
func (m *metrics) Registry() prometheus.Registerer { return m.registry }

func (m *metrics) commandStarted(string) { m.commandsRunning.Inc() }

func (m *metrics) commandEnded(name, status string, d time.Duration) {
	m.commandsRunning.Dec()
	m.commands.WithLabelValues(name, status).Inc()
	m.commandDuration.WithLabelValues(name).Observe(d.Seconds())
}
