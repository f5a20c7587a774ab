package election

import (
	"fmt"
	"testing"
)

// BenchmarkElect elects 1,000 addresses over 100 nodes per iteration, the
// work of one full resync in a large cluster. Half the addresses are Local
// with endpoints on 10 nodes; a few nodes are not candidates.
func BenchmarkElect(b *testing.B) {
	nodes := make([]Node, 100)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("node-%03d", i))
		switch i % 25 {
		case 3:
			nodes[i].Ready = false
		case 7:
			nodes[i].Interfaces = []Interface{down("eth0")}
		}
	}
	inputs := make([]Input, 1000)
	for i := range inputs {
		ip := addr4(i)
		if i%4 == 3 {
			ip = addr6(i)
		}
		e := eps{}
		for k := range 10 {
			e[nodes[(i+k*7)%100].Name] = Endpoints{Ready: 1}
		}
		inputs[i] = Input{IP: ip, Nodes: nodes, Services: []Service{{Key: "default/web", LocalPolicy: i%2 == 0, Endpoints: e}}, CurrentOwner: nodes[i%100].Name}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, in := range inputs {
			if r := Elect(in); r.Winner == "" {
				b.Fatal(r.Message)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(inputs)), "ns/address")
}
