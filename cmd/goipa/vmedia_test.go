package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/agent"
	"github.com/goipa/goipa/kernelparams"
	"github.com/goipa/goipa/vmedia"
)

// Every option vmedia maps names a parameter goipa's configuration has:
// a misspelt one would make init's configuration fail at boot.
func TestVMediaParametersAreGoipaParameters(t *testing.T) {
	for _, p := range vmedia.Parameters() {
		_, err := agent.ParseConfig("ipa-standalone=1", []string{"--" + p + "=1"})
		if err != nil {
			assert.NotContains(t, err.Error(), "flag provided but not defined", p)
		}
	}
}

func TestVMediaPrecedence(t *testing.T) {
	// Kernel < floppy parameters.txt < configuration files < goipa's own flags.
	cmdline := mergeCmdline("ipa-api-url=http://kernel:6385 ipa-listen-port=1000 ipa-insecure=0 boot_method=vmedia",
		map[string]string{"ipa-api-url": "http://floppy:6385", "ipa-listen-port": "2000"})
	ovs, _ := vmedia.Overrides([]vmedia.ConfigFile{{Name: "f", INI: vmedia.INI{"DEFAULT": {"listen_port": "3000", "insecure": "true", "cafile": "/etc/ironic-python-agent/ironic.crt"}}}}, nil)
	cfg, err := agent.ParseConfig(cmdline, append(vmedia.Flags(ovs), "--ipa-insecure=0"))
	require.NoError(t, err)
	assert.Equal(t, []string{"http://floppy:6385"}, cfg.APIURLs)
	assert.Equal(t, 3000, cfg.ListenPort)
	assert.Equal(t, "/etc/ironic-python-agent/ironic.crt", cfg.CAFile)
	assert.False(t, cfg.Insecure, "a flag given to goipa wins over the files")
	assert.Equal(t, "vmedia", cfg.BootMethod)
}

func TestMergeCmdline(t *testing.T) {
	assert.Equal(t, "a=1", mergeCmdline("a=1", nil))
	got := mergeCmdline("a=1 b=2\n", map[string]string{"b": `x"y`, "c": "3"})
	assert.Equal(t, `a=1 b=2 b="xy" c="3"`, got, "appended, so the later word wins")
	m := kernelparams.Split(got)
	assert.Equal(t, "xy", m["b"])
	assert.Equal(t, "3", m["c"])
	assert.False(t, strings.Contains(got, "\n"))
}
