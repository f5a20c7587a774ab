package migrate

import (
	"testing"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/config"
)

// outputErrors checks a Result's objects as Pharos does, all together, and
// returns what Pharos would reject: the output must never hold any.
func outputErrors(r *Result) []string {
	var out []string
	add := func(kind, name string, errs error) { out = append(out, kind+" "+name+": "+errs.Error()) }
	built := config.Build(r.IPAddressPools, nil)
	for name, errs := range built.Errors {
		add("IPAddressPool", name, errs.ToAggregate())
	}
	aliases, aliasErrs := config.ParseCommunityAliases(r.Communities)
	for name, errs := range aliasErrs {
		add("Community", name, errs.ToAggregate())
	}
	for i := range r.BFDProfiles {
		if _, errs := config.ParseBFDProfile(&r.BFDProfiles[i]); len(errs) > 0 {
			add("BFDProfile", r.BFDProfiles[i].Name, errs.ToAggregate())
		}
	}
	for i := range r.BGPPeers {
		if _, errs := config.ParseBGPPeer(&r.BGPPeers[i]); len(errs) > 0 {
			add("BGPPeer", r.BGPPeers[i].Name, errs.ToAggregate())
		}
	}
	exists := config.PoolNames(r.IPAddressPools)
	for i := range r.L2Advertisements {
		if _, _, errs := config.ParseL2Advertisement(&r.L2Advertisements[i], exists); len(errs) > 0 {
			add("L2Advertisement", r.L2Advertisements[i].Name, errs.ToAggregate())
		}
	}
	var advs []*config.BGPAdvertisement
	labels := map[string]map[string]string{}
	for _, p := range r.IPAddressPools {
		labels[p.Name] = p.Labels
	}
	for i := range r.BGPAdvertisements {
		adv, _, errs := config.ParseBGPAdvertisement(&r.BGPAdvertisements[i], aliases, exists)
		if len(errs) > 0 {
			add("BGPAdvertisement", r.BGPAdvertisements[i].Name, errs.ToAggregate())
			continue
		}
		for _, pool := range built.Config.Pools {
			if adv.SelectsPoolNamed(pool.Name, pool.Labels) {
				if errs := config.AggregationErrors(adv, pool); len(errs) > 0 {
					add("BGPAdvertisement", adv.Name, errs.ToAggregate())
				}
			}
		}
		advs = append(advs, adv)
	}
	for name, errs := range config.LocalPrefConflicts(advs, labels) {
		add("BGPAdvertisement", name, errs.ToAggregate())
	}
	return out
}

// TestExamplesConvert converts every documented example together, as
// migrate-metallb would a directory, and checks that nothing is lost
// (no Error, no object left out) and that Pharos accepts every object.
func TestExamplesConvert(t *testing.T) {
	sources, problems := ReadFiles([]string{metallbTestdata})
	res := Convert(sources, Options{})
	for _, p := range append(problems, res.Problems...) {
		if p.Severity == Error {
			t.Errorf("error on a documented example: %s", p)
		}
	}
	if errs := outputErrors(&res); len(errs) > 0 {
		t.Errorf("Pharos rejects converted objects:\n%v", errs)
	}
	n := len(res.IPAddressPools) + len(res.Communities) + len(res.BFDProfiles) + len(res.BGPPeers) +
		len(res.L2Advertisements) + len(res.BGPAdvertisements) + len(res.Services)
	if n != len(sources) {
		t.Errorf("%d objects read, %d converted", len(sources), n)
	}
	for _, obj := range res.BGPPeers {
		if obj.APIVersion != v1beta1.GroupVersion.String() || obj.Kind != "BGPPeer" || obj.Namespace != "" {
			t.Errorf("BGPPeer %s: apiVersion %q kind %q namespace %q", obj.Name, obj.APIVersion, obj.Kind, obj.Namespace)
		}
	}
}

// TestBadExamplesOutputValid: what is converted from the bad examples is
// still only what Pharos accepts.
func TestBadExamplesOutputValid(t *testing.T) {
	for _, path := range exampleFiles(t, true) {
		res, problems := convertFile(t, path)
		if len(problems)+len(res.Problems) == 0 {
			t.Errorf("%s: no problem reported", path)
		}
		if errs := outputErrors(&res); len(errs) > 0 {
			t.Errorf("%s: Pharos rejects converted objects:\n%v", path, errs)
		}
	}
}
