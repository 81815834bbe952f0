package initramfs

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testVermagic = "6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions "

// fakeKernel lays out an unpacked kernel with psample.ko (what netdevsim
// depends on) and virtio_net.ko.
func fakeKernel(t *testing.T) *Kernel {
	dir := t.TempDir()
	mods := filepath.Join(dir, "lib/modules/6.1.0-57-cloud-amd64")
	for rel, kv := range map[string][]string{
		"kernel/net/psample/psample.ko":    {"name=psample", "vermagic=" + testVermagic},
		"kernel/drivers/net/virtio_net.ko": {"name=virtio_net", "vermagic=" + testVermagic, "alias=virtio:d00000001v*"},
	} {
		p := filepath.Join(mods, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.Rename(modinfoELF(t, kv...), p))
	}
	return &Kernel{Version: "6.1.0-57-cloud-amd64", ModulesDir: mods, Arch: "amd64"}
}

func extraModule(t *testing.T, name string, kv ...string) string {
	p := filepath.Join(t.TempDir(), name+".ko")
	require.NoError(t, os.Rename(modinfoELF(t, kv...), p))
	return p
}

func TestExtraModules(t *testing.T) {
	k := fakeKernel(t)
	nds := extraModule(t, "netdevsim", "name=netdevsim", "depends=psample", "vermagic="+testVermagic, "alias=rtnl-link-netdevsim")
	v, err := KernelVermagic(k)
	require.NoError(t, err)
	assert.Equal(t, testVermagic, v)

	recs, chosen, err := moduleRecords(Options{Kernel: k, Modules: []string{"virtio_net"}, ExtraModules: []string{nds}})
	require.NoError(t, err)
	var names []string
	for _, m := range chosen {
		names = append(names, m.Name)
	}
	assert.Equal(t, []string{"virtio_net", "psample", "netdevsim"}, names, "the extra module comes with its dependency from the kernel")
	files := map[string]string{}
	for _, r := range recs {
		b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		require.NoError(t, err)
		files[r.Name] = string(b)
	}
	base := "lib/modules/6.1.0-57-cloud-amd64/"
	ko, err := os.ReadFile(nds)
	require.NoError(t, err)
	assert.Equal(t, string(ko), files[base+"extra/netdevsim.ko"])
	assert.Contains(t, files[base+"modules.dep"], "extra/netdevsim.ko: kernel/net/psample/psample.ko\n")
	assert.Contains(t, files[base+"modules.alias"], "alias rtnl-link-netdevsim netdevsim\n")

	// Without ExtraModules nothing of it is there: the default sets never
	// carry it.
	recs, _, err = moduleRecords(Options{Kernel: k, Modules: []string{"virtio_net"}})
	require.NoError(t, err)
	for _, r := range recs {
		assert.NotContains(t, r.Name, "netdevsim")
		assert.NotContains(t, r.Name, "psample")
	}
}

func TestExtraModuleVermagicRefused(t *testing.T) {
	k := fakeKernel(t)
	for name, vermagic := range map[string]string{
		"another release":    "6.1.0-28-cloud-amd64 SMP preempt mod_unload modversions ",
		"another preemption": "6.1.0-57-cloud-amd64 SMP mod_unload modversions ",
		"none":               "",
	} {
		kv := []string{"name=netdevsim", "depends=psample"}
		if vermagic != "" {
			kv = append(kv, "vermagic="+vermagic)
		}
		p := extraModule(t, "netdevsim", kv...)
		_, _, err := moduleRecords(Options{Kernel: k, ExtraModules: []string{p}})
		var ve *VermagicError
		require.ErrorAs(t, err, &ve, name)
		assert.Equal(t, testVermagic, ve.Want, name)
		assert.Contains(t, err.Error(), "6.1.0-57-cloud-amd64", name)
		_, err = CheckModule(k, p)
		assert.ErrorAs(t, err, &ve, name)
	}
	_, err := Build(t.Context(), Options{ExtraModules: []string{"x.ko"}, Output: filepath.Join(t.TempDir(), "i")})
	assert.ErrorContains(t, err, "without a kernel")
	_, err = ModuleInfo(filepath.Join(t.TempDir(), "netdevsim.txt"))
	assert.True(t, err != nil && strings.Contains(err.Error(), "not a .ko"))
}
