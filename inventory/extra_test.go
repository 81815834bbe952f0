package inventory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
}

func TestAcceleratorsAndTopologyFromSysfs(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		// An NVIDIA A100 (3D controller), a Gaudi accelerator, an Ethernet NIC.
		"sys/bus/pci/devices/0000:3b:00.0/class":                    "0x030200\n",
		"sys/bus/pci/devices/0000:3b:00.0/vendor":                   "0x10de\n",
		"sys/bus/pci/devices/0000:3b:00.0/device":                   "0x20b5\n",
		"sys/bus/pci/devices/0000:3b:00.0/numa_node":                "1\n",
		"sys/bus/pci/devices/0000:4c:00.0/class":                    "0x120000\n",
		"sys/bus/pci/devices/0000:4c:00.0/vendor":                   "0x1da3\n",
		"sys/bus/pci/devices/0000:4c:00.0/device":                   "0x1020\n",
		"sys/bus/pci/devices/0000:4c:00.0/numa_node":                "-1\n",
		"sys/bus/pci/devices/0000:18:00.0/class":                    "0x020000\n",
		"sys/devices/system/node/node0/meminfo":                     "Node 0 MemTotal:       65536000 kB\nNode 0 MemFree: 1 kB\n",
		"sys/devices/system/node/node0/cpulist":                     "0-3\n",
		"sys/devices/system/node/node1/meminfo":                     "Node 1 MemTotal:       32768000 kB\n",
		"sys/devices/system/node/node1/cpulist":                     "4-5\n",
		"sys/devices/system/cpu/cpu0/topology/thread_siblings_list": "0,2\n",
		"sys/devices/system/cpu/cpu0/topology/core_id":              "0\n",
		"sys/devices/system/cpu/cpu1/topology/thread_siblings_list": "1,3\n",
		"sys/devices/system/cpu/cpu1/topology/core_id":              "1\n",
		"sys/devices/system/cpu/cpu2/topology/thread_siblings_list": "0,2\n",
		"sys/devices/system/cpu/cpu3/topology/thread_siblings_list": "1,3\n",
		"sys/devices/system/cpu/cpu4/topology/thread_siblings_list": "4-5\n",
		"sys/devices/system/cpu/cpu4/topology/core_id":              "8\n",
		"sys/devices/system/cpu/cpu5/topology/thread_siblings_list": "4-5\n",
		"sys/class/net/eth0/device/numa_node":                       "1\n",
		"sys/class/net/eth1/device/numa_node":                       "-1\n",
	})
	o := newOptions([]Option{WithRoot(root)})
	acc := accelerators(o)
	require.Len(t, acc, 2)
	one := 1
	assert.Equal(t, Accelerator{PCIAddress: "0000:3b:00.0", VendorID: "10de", ProductID: "20b5", Class: "030200", Kind: "gpu", NUMANode: &one}, acc[0])
	assert.Equal(t, "accelerator", acc[1].Kind)
	assert.Nil(t, acc[1].NUMANode, "numa_node -1 means unknown")

	top := topology(o)
	assert.Equal(t, []NUMARAM{{Node: 0, SizeKB: 65536000}, {Node: 1, SizeKB: 32768000}}, top.RAM)
	assert.Equal(t, []NUMACPU{{CPU: 0, Node: 0, ThreadSiblings: []int{0, 2}}, {CPU: 1, Node: 0, ThreadSiblings: []int{1, 3}},
		{CPU: 8, Node: 1, ThreadSiblings: []int{4, 5}}}, top.CPUs)
	assert.Equal(t, []NUMANIC{{Name: "eth0", Node: 1}, {Name: "eth1", Node: -1}}, top.NICs, "IPA keeps -1")
	assert.True(t, hasNUMA(o))
	assert.False(t, hasNUMA(newOptions([]Option{WithRoot(t.TempDir())})), "no node directory: IPA sends no numa_topology")
}

func TestParseCPUList(t *testing.T) {
	assert.Equal(t, []int{0, 1, 2, 5, 7, 8}, parseCPUList("0-2,5,7-8\n"))
	assert.Empty(t, parseCPUList("x,-"))
}
