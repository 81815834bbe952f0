package discovery

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/net/dns/dnsmessage"
)

func TestParseTXT(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		want   map[string]string
	}{
		{name: "Ironic's records", fields: []string{"protocol=http", "ipa_debug=True"}, want: map[string]string{"protocol": "http", "ipa_debug": "True"}},
		{name: "no records", fields: nil, want: map[string]string{}},
		{name: "an empty string (zeroconf's empty TXT)", fields: []string{""}, want: map[string]string{}},
		{name: "a key without value", fields: []string{"flag"}, want: map[string]string{"flag": ""}},
		{name: "an empty value", fields: []string{"path="}, want: map[string]string{"path": ""}},
		{name: "the value keeps its = signs", fields: []string{"params=a=b,c=d"}, want: map[string]string{"params": "a=b,c=d"}},
		{name: "an empty key is ignored", fields: []string{"=x", "k=v"}, want: map[string]string{"k": "v"}},
		{name: "the first of a repeated key wins, any case", fields: []string{"Path=/a", "path=/b"}, want: map[string]string{"Path": "/a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ParseTXT(tc.fields))
		})
	}
}

func FuzzParseTXT(f *testing.F) {
	f.Add("protocol=http\x00ipa_debug=True")
	f.Add("=\x00a\x00a=b=c")
	f.Fuzz(func(t *testing.T, s string) {
		got := ParseTXT(strings.Split(s, "\x00"))
		for k := range got {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("bad key %q", k)
			}
		}
	})
}

func TestInstanceName(t *testing.T) {
	assert.Equal(t, "baremetal._openstack._tcp.local.", instanceName("baremetal", "_openstack._tcp"))
	assert.Equal(t, "baremetal-introspection._openstack._tcp.local.", instanceName("baremetal-introspection.", "_openstack._tcp."))
}

// response builds an answer as python-zeroconf (Ironic's publisher)
// sends it: SRV and TXT, the address as additional, and an NSEC record
// with an empty type-bitmap block, which miekg/dns refuses outright.
func response(t testing.TB, host string, port uint16, txt []string, addr [4]byte) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
	inst := dnsmessage.MustNewName("baremetal._openstack._tcp.local.")
	h := dnsmessage.MustNewName(host)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartAnswers())
	must(b.SRVResource(dnsmessage.ResourceHeader{Name: inst, Class: dnsmessage.ClassINET | 1<<15, TTL: 120}, dnsmessage.SRVResource{Port: port, Target: h}))
	must(b.TXTResource(dnsmessage.ResourceHeader{Name: inst, Class: dnsmessage.ClassINET | 1<<15, TTL: 4500}, dnsmessage.TXTResource{TXT: txt}))
	must(b.StartAdditionals())
	must(b.AResource(dnsmessage.ResourceHeader{Name: h, Class: dnsmessage.ClassINET | 1<<15, TTL: 120}, dnsmessage.AResource{A: addr}))
	// NSEC (type 47): next name, then a window block 0 of length 0.
	nsec := append([]byte{0}, 0, 0) // root name, window 0, length 0
	must(b.UnknownResource(dnsmessage.ResourceHeader{Name: h, Type: 47, Class: dnsmessage.ClassINET | 1<<15, TTL: 120}, dnsmessage.UnknownResource{Type: 47, Data: nsec}))
	msg, err := b.Finish()
	must(err)
	return msg
}

func TestParseResponseAsZeroconfSendsIt(t *testing.T) {
	msg := response(t, "baremetal._openstack._tcp.local.", 6385, []string{"protocol=http", "ipa_debug=True"}, [4]byte{192, 168, 78, 1})
	recs, err := ParseResponse(msg)
	assert.NoError(t, err, "an NSEC record with an empty bitmap is skipped, not fatal")
	a := newAnswers()
	a.add(recs)
	s := a.service(instanceName("baremetal", "_openstack._tcp"))
	if assert.NotNil(t, s) {
		assert.Equal(t, 6385, s.Port)
		assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.168.78.1")}, s.Addrs)
		assert.Equal(t, map[string]string{"protocol": "http", "ipa_debug": "True"}, s.TXT)
	}
}

func TestAnswersNeedEveryPart(t *testing.T) {
	want := instanceName("baremetal", "_openstack._tcp")
	srv := Record{Name: want, Type: dnsmessage.TypeSRV, Target: "host.local.", Port: 6385}
	txt := Record{Name: want, Type: dnsmessage.TypeTXT, TXT: []string{"protocol=http"}}
	addr := Record{Name: "host.local.", Type: dnsmessage.TypeA, Addr: netip.MustParseAddr("10.0.0.5")}
	v6 := Record{Name: "host.local.", Type: dnsmessage.TypeAAAA, Addr: netip.MustParseAddr("fd00::5")}
	other := Record{Name: "baremetal-introspection._openstack._tcp.local.", Type: dnsmessage.TypeSRV, Target: "x.local.", Port: 5050}
	named := Record{Name: want, Type: dnsmessage.TypeSRV, Target: "ironic.example.com.", Port: 6385}
	for _, tc := range []struct {
		name      string
		recs      []Record
		complete  bool
		wantAddrs []netip.Addr
	}{
		{name: "SRV, TXT and address", recs: []Record{srv, txt, addr}, complete: true, wantAddrs: []netip.Addr{addr.Addr}},
		{name: "IPv4 first", recs: []Record{srv, txt, v6, addr, addr}, complete: true, wantAddrs: []netip.Addr{addr.Addr, v6.Addr}},
		{name: "no TXT yet", recs: []Record{srv, addr}},
		{name: "no SRV yet", recs: []Record{txt, addr}},
		{name: "a .local. host without address", recs: []Record{srv, txt}},
		{name: "a real host name needs no address", recs: []Record{named, txt}, complete: true},
		{name: "another instance is not this one", recs: []Record{other, txt, addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAnswers()
			a.add(tc.recs)
			s := a.service(want)
			assert.Equal(t, tc.complete, s != nil)
			if s != nil {
				assert.Equal(t, tc.wantAddrs, s.Addrs)
			}
		})
	}
}

func TestQuestionAsksForSRVAndTXT(t *testing.T) {
	q, err := question(instanceName("baremetal", "_openstack._tcp"), "")
	assert.NoError(t, err)
	var p dnsmessage.Parser
	h, err := p.Start(q)
	assert.NoError(t, err)
	assert.False(t, h.Response)
	qs, err := p.AllQuestions()
	assert.NoError(t, err)
	if assert.Len(t, qs, 2) {
		assert.Equal(t, dnsmessage.TypeSRV, qs[0].Type)
		assert.Equal(t, dnsmessage.TypeTXT, qs[1].Type)
		assert.Equal(t, "baremetal._openstack._tcp.local.", qs[0].Name.String())
		assert.NotZero(t, qs[0].Class&(1<<15), "the QU bit asks for a unicast answer")
	}
	q, err = question(instanceName("baremetal", "_openstack._tcp"), "host.local.")
	assert.NoError(t, err)
	p = dnsmessage.Parser{}
	p.Start(q)
	qs, _ = p.AllQuestions()
	assert.Len(t, qs, 3, "with the host known, its address is asked for too")
}

func FuzzParseResponse(f *testing.F) {
	f.Add(response(f, "baremetal._openstack._tcp.local.", 6385, []string{"protocol=http"}, [4]byte{10, 0, 0, 1}))
	f.Add(response(f, "ironic.example.com.", 443, nil, [4]byte{10, 0, 0, 2}))
	f.Add([]byte{0x84, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := ParseResponse(b)
		a := newAnswers()
		a.add(recs)
		a.service(instanceName("baremetal", "_openstack._tcp"))
		for _, r := range recs {
			if r.Name != strings.ToLower(r.Name) {
				t.Fatalf("name %q not lower case", r.Name)
			}
		}
	})
}
