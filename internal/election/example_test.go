package election_test

import (
	"fmt"
	"net/netip"

	"github.com/pharos-lb/pharos/internal/election"
)

func ExampleElect() {
	lab := func(name string, ready, up bool) election.Node {
		return election.Node{Name: name, Alive: true, Selected: true, Ready: ready,
			Interfaces: []election.Interface{{Name: "eth1", Up: up}}}
	}
	in := election.Input{
		IP: netip.MustParseAddr("198.18.0.1"),
		Nodes: []election.Node{
			lab("plab-n1", false, true),
			lab("plab-n2", true, false),
			lab("plab-n3", true, true),
		},
		Services: []election.Service{{
			Key:         "default/web",
			LocalPolicy: true,
			Endpoints:   map[string]election.Endpoints{"plab-n1": {Ready: 1}, "plab-n3": {Ready: 1}},
		}},
	}
	r := election.Elect(in)
	fmt.Println(r.Reason, r.Winner, r.Interfaces)
	fmt.Println(r.Message)

	// plab-n3 loses its pod: nobody can serve the Local Service.
	in.Services[0].Endpoints = map[string]election.Endpoints{"plab-n1": {Ready: 1}}
	in.CurrentOwner = r.Winner
	r = election.Elect(in)
	fmt.Println(r.Reason)
	fmt.Println(r.Message)
	// Output:
	// Elected plab-n3 [eth1]
	// plab-n3 is the only candidate
	// NoEligibleNode
	// no eligible node: plab-n1: not Ready; plab-n3: no ready local endpoint of default/web; plab-n2: interface eth1 down, no ready local endpoint of default/web
}
