// Package l2announce is the speaker's layer-2 announcer: it takes the
// desired state computed by internal/speaker and makes this node answer ARP
// and NDP for exactly the addresses it won, through one internal/layer2
// Announcer per interface. It owns those announcers' lifecycle: one is
// opened when an interface first carries an address, reopened when the
// interface is replaced (deleted and recreated under the same name, a new
// MAC) or gains the IPv6 link-local address it lacked (NDP needs it), and
// closed when the interface vanishes or carries nothing any more.
package l2announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/election"
	"github.com/pharos-lb/pharos/internal/layer2"
	"github.com/pharos-lb/pharos/internal/speaker"
)

// ClaimPublisher shares this node's claims with the other speakers
// (internal/speakerlist's List).
type ClaimPublisher interface {
	SetClaims(claims map[netip.Addr]int64)
}

// Link is what the announcer needs to know of an interface to tell whether
// its open Announcer still serves it.
type Link struct {
	Index        int
	HardwareAddr string
	// LinkLocal says the interface has an IPv6 link-local address, without
	// which an Announcer cannot answer NDP.
	LinkLocal bool
}

// Options configure a Layer2.
type Options struct {
	// Node is this node's name.
	Node string
	// Announcer is the template of every interface's layer2.Options; its
	// Interface is set per interface.
	Announcer layer2.Options
	// Claims receives this node's claims; nil publishes none.
	Claims ClaimPublisher
	// OwnerLeft reports when this node learned that the previous owner of
	// an address it takes over left or died (speakerlist's OwnerLeft), for
	// the failover histogram; nil measures nothing.
	OwnerLeft func(ip netip.Addr) (time.Time, bool)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Open opens an interface's announcer and starts serving it until ctx
	// ends; nil uses layer2.New and Run. Tests replace it.
	Open func(ctx context.Context, opts layer2.Options) (Interface, error)
	// LookupLink describes an interface, or fails if it does not exist;
	// nil reads it from the kernel.
	LookupLink func(name string) (Link, error)
}

// Interface is an open per-interface announcer: *layer2.Announcer.
type Interface interface {
	SetOwned(ips []netip.Addr)
	ProbeAll(ctx context.Context, ips []netip.Addr, timeout time.Duration) (map[netip.Addr][]net.HardwareAddr, error)
	Stats() layer2.Stats
	Close() error
}

type openIface struct {
	ann    Interface
	link   Link
	cancel context.CancelFunc
}

type ownership struct {
	iface string
	epoch int64
}

// Layer2 announces this node's addresses by ARP and NDP. It implements
// speaker.Announcer. Its methods are safe for concurrent use.
type Layer2 struct {
	opts Options
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	ifaces   map[string]*openIface
	owned    map[netip.Addr]ownership
	failed   map[netip.Addr]string // address -> why this node cannot announce it
	conflict map[netip.Addr]string // address -> other MACs answering for it
	// held are the addresses this node won but does not take while it is
	// cut off from the memberlist cluster, with their interfaces; free are
	// those of them the LAN showed nobody answers for (see Apply).
	held     map[netip.Addr]string
	free     map[netip.Addr]bool
	draining bool
	closed   bool
	// base keeps the counters of closed announcers, so the exported
	// totals never go down when an interface is reopened.
	base map[string]layer2.Stats
	// failover observes the takeovers of addresses whose owner left.
	failover prometheus.Histogram
}

var _ speaker.Announcer = (*Layer2)(nil)

// New returns a Layer2 that announces nothing until Apply.
func New(opts Options) *Layer2 {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Open == nil {
		opts.Open = openLayer2
	}
	if opts.LookupLink == nil {
		opts.LookupLink = lookupLink
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Layer2{opts: opts, log: opts.Logger, ctx: ctx, stop: stop,
		ifaces: map[string]*openIface{}, owned: map[netip.Addr]ownership{},
		failed: map[netip.Addr]string{}, conflict: map[netip.Addr]string{}, base: map[string]layer2.Stats{},
		free:     map[netip.Addr]bool{},
		failover: newFailoverHistogram()}
}

// Apply announces exactly the addresses this node won, each on its
// interface, and publishes the claims when they change.
func (l *Layer2) Apply(st *speaker.State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	wanted := st.Won(l.opts.Node)
	if l.draining {
		wanted = map[netip.Addr]string{}
	}
	held := map[netip.Addr]string{}
	if st.CutOff {
		// On the minority side of a memberlist split, the others see this
		// node dead and elect other owners: it gives up an address once
		// another MAC answers for it (the split-brain probe's conflict),
		// so that two MACs answer only until that probe runs, and takes
		// a new one only once the LAN showed that nobody answers for it
		// (SetFree), as when the other speakers really failed.
		for ip, iface := range wanted {
			_, had := l.owned[ip]
			switch {
			case had && l.conflict[ip] != "":
				held[ip] = iface
				delete(wanted, ip)
			case !had && !l.free[ip]:
				held[ip] = iface
				delete(wanted, ip)
			}
		}
	}
	for ip := range l.free {
		if _, ok := wanted[ip]; !ok || !st.CutOff {
			delete(l.free, ip)
		}
	}
	l.held = held
	byIface := map[string][]netip.Addr{}
	for ip, iface := range wanted {
		byIface[iface] = append(byIface[iface], ip)
	}
	// The interfaces of held addresses stay open, to probe them.
	heldIface := map[string]bool{}
	for _, iface := range held {
		if _, used := byIface[iface]; !used && l.ensureLocked(iface) == nil {
			heldIface[iface] = true
		}
	}
	failed := map[netip.Addr]string{}
	for iface, ips := range byIface {
		if err := l.ensureLocked(iface); err != nil {
			for _, ip := range ips {
				failed[ip] = err.Error()
				delete(wanted, ip)
			}
			delete(byIface, iface)
		}
	}
	for name, oi := range l.ifaces {
		if _, used := byIface[name]; !used && !heldIface[name] {
			l.closeLocked(name, oi)
			continue
		}
		oi.ann.SetOwned(byIface[name])
	}
	// The announcers send a takeover's first gratuitous frame at once.
	handedOver := time.Now()
	for ip, why := range failed {
		if l.failed[ip] != why {
			l.log.Error("cannot announce", "ip", ip, "err", why)
		}
	}
	l.failed = failed

	next := map[netip.Addr]ownership{}
	for ip, iface := range wanted {
		o, had := l.owned[ip]
		if !had || o.iface != iface {
			epoch := int64(1)
			if a := st.Lookup(ip); a != nil {
				epoch = speaker.NextEpoch(a.Claims)
			}
			o = ownership{iface: iface, epoch: epoch}
			l.log.Info("taking over", "ip", ip, "interface", iface)
			if !had && l.opts.OwnerLeft != nil {
				if left, ok := l.opts.OwnerLeft(ip); ok {
					l.failover.Observe(handedOver.Sub(left).Seconds())
				}
			}
		}
		next[ip] = o
	}
	for ip, o := range l.owned {
		if _, keep := next[ip]; !keep {
			l.log.Info("releasing", "ip", ip, "interface", o.iface)
			delete(l.conflict, ip)
		}
	}
	changed := len(next) != len(l.owned)
	for ip, o := range next {
		if l.owned[ip] != o {
			changed = true
		}
	}
	l.owned = next
	if changed && l.opts.Claims != nil {
		claims := make(map[netip.Addr]int64, len(next))
		for ip, o := range next {
			claims[ip] = o.epoch
		}
		l.opts.Claims.SetClaims(claims)
	}
}

// ensureLocked opens the interface's announcer, or reopens it when the
// interface it was opened on is gone or changed.
func (l *Layer2) ensureLocked(name string) error {
	link, err := l.opts.LookupLink(name)
	oi := l.ifaces[name]
	if err != nil {
		if oi != nil {
			l.closeLocked(name, oi)
		}
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if oi != nil {
		if oi.link == link {
			return nil
		}
		l.log.Info("interface changed; reopening its announcer", "interface", name,
			"index", link.Index, "mac", link.HardwareAddr, "linkLocal", link.LinkLocal)
		l.closeLocked(name, oi)
	}
	opts := l.opts.Announcer
	opts.Interface = name
	ctx, cancel := context.WithCancel(l.ctx)
	ann, err := l.opts.Open(ctx, opts)
	if err != nil {
		cancel()
		return err
	}
	l.ifaces[name] = &openIface{ann: ann, link: link, cancel: cancel}
	return nil
}

func (l *Layer2) closeLocked(name string, oi *openIface) {
	oi.cancel()
	if err := oi.ann.Close(); err != nil {
		l.log.Warn("closing announcer", "interface", name, "err", err)
	}
	l.base[name] = addStats(l.base[name], oi.ann.Stats())
	delete(l.ifaces, name)
}

// Describe words the address's layer-2 announcement: the winner and its
// interface, or why nobody announces it, and this node's own failure or
// split brain when it is the winner.
func (l *Layer2) Describe(a *speaker.Address) speaker.Report {
	r := a.Election
	if r.Winner == "" && r.Reason == election.NoMatchingAdvertisement && len(a.BGP.Advertisements) > 0 {
		// Announced by BGP only: layer 2 has nothing to say about it.
		return speaker.Report{}
	}
	if r.Winner == "" {
		return speaker.Report{Applies: true, Reason: string(r.Reason), Message: r.Message}
	}
	proto := "ARP"
	if a.IP.Is6() {
		proto = "NDP"
	}
	rep := speaker.Report{Applies: true, Announced: true,
		Message: fmt.Sprintf("from node %s on %s (%s)", r.Winner, strings.Join(r.Interfaces, ","), proto)}
	if r.Winner != l.opts.Node {
		return rep
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if why := l.failed[a.IP]; why != "" {
		return speaker.Report{Applies: true, Reason: v1beta1.ReasonAnnounceFailed,
			Message: fmt.Sprintf("node %s won it but cannot announce it: %s", r.Winner, why)}
	}
	if macs := l.conflict[a.IP]; macs != "" {
		rep.Reason = v1beta1.ReasonSplitBrain
		rep.Message += fmt.Sprintf(", but MAC %s also answers for it: find the other device or load balancer using this address", macs)
	}
	return rep
}

// Owned returns the addresses this node announces now, with their
// interfaces.
func (l *Layer2) Owned() map[netip.Addr]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[netip.Addr]string, len(l.owned))
	for ip, o := range l.owned {
		out[ip] = o.iface
	}
	return out
}

// Probe asks the LAN, through each address's interface, which other MACs
// answer for addresses this node announces: all at once, one wait for
// every interface. An address nobody else answers for, or that this node
// does not announce, has no entry; the error says which interfaces could
// not be probed (their addresses have no entry either).
func (l *Layer2) Probe(ctx context.Context, ips []netip.Addr, timeout time.Duration) (map[netip.Addr][]net.HardwareAddr, error) {
	byIface := map[Interface][]netip.Addr{}
	l.mu.Lock()
	for _, ip := range ips {
		o, ok := l.owned[ip]
		if oi := l.ifaces[o.iface]; ok && oi != nil {
			byIface[oi.ann] = append(byIface[oi.ann], ip)
		}
	}
	l.mu.Unlock()
	var (
		mu   sync.Mutex
		out  = map[netip.Addr][]net.HardwareAddr{}
		errs []error
		wg   sync.WaitGroup
	)
	for ann, ips := range byIface {
		wg.Go(func() {
			found, err := ann.ProbeAll(ctx, ips, timeout)
			mu.Lock()
			defer mu.Unlock()
			maps.Copy(out, found)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Held returns the addresses this node won but holds back while it is cut
// off from the memberlist cluster, with their interfaces: the split-brain
// probe asks the LAN who answers for them (ProbeHeld) and frees those
// nobody does (SetFree).
func (l *Layer2) Held() map[netip.Addr]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.held)
}

// ProbeHeld asks the LAN, through the interface a held address would be
// announced on, which MACs answer for it.
func (l *Layer2) ProbeHeld(ctx context.Context, ip netip.Addr, timeout time.Duration) ([]net.HardwareAddr, error) {
	l.mu.Lock()
	iface, ok := l.held[ip]
	var ann Interface
	if oi := l.ifaces[iface]; ok && oi != nil {
		ann = oi.ann
	}
	l.mu.Unlock()
	if ann == nil {
		return nil, fmt.Errorf("%s is not held by this node", ip)
	}
	found, err := ann.ProbeAll(ctx, []netip.Addr{ip}, timeout)
	return found[ip], err
}

// SetFree lets a node cut off from the memberlist cluster take a held
// address, which nobody on the LAN answers for, at the next Apply.
func (l *Layer2) SetFree(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[ip]; ok {
		l.free[ip] = true
	}
}

// SetConflict records (or, with "", clears) the other MACs seen answering
// for ip, for Describe.
func (l *Layer2) SetConflict(ip netip.Addr, macs string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if macs == "" {
		delete(l.conflict, ip)
	} else {
		l.conflict[ip] = macs
	}
}

// Release stops answering for every address and keeps it so: the speaker
// is handing its addresses over before it stops.
func (l *Layer2) Release() {
	l.mu.Lock()
	l.draining = true
	l.mu.Unlock()
	l.Apply(&speaker.State{})
}

// Stats returns the counters of every interface, closed ones included.
func (l *Layer2) Stats() map[string]layer2.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]layer2.Stats, len(l.base)+len(l.ifaces))
	for name, s := range l.base {
		out[name] = s
	}
	for name, oi := range l.ifaces {
		out[name] = addStats(out[name], oi.ann.Stats())
	}
	return out
}

// Interfaces returns the names of the interfaces with an open announcer.
func (l *Layer2) Interfaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.ifaces))
	for name := range l.ifaces {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Close withdraws every address and closes every announcer.
func (l *Layer2) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for name, oi := range l.ifaces {
		l.closeLocked(name, oi)
	}
	l.stop()
	l.owned = map[netip.Addr]ownership{}
	return nil
}

// Failed returns the addresses this node won but cannot announce, with
// the reason.
func (l *Layer2) Failed() map[netip.Addr]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.failed)
}

func addStats(a, b layer2.Stats) layer2.Stats {
	return layer2.Stats{
		ARPAnswered: a.ARPAnswered + b.ARPAnswered, ARPIgnored: a.ARPIgnored + b.ARPIgnored, ARPMalformed: a.ARPMalformed + b.ARPMalformed,
		NDPAnswered: a.NDPAnswered + b.NDPAnswered, NDPIgnored: a.NDPIgnored + b.NDPIgnored, NDPMalformed: a.NDPMalformed + b.NDPMalformed,
		GratuitousSent: a.GratuitousSent + b.GratuitousSent, SendErrors: a.SendErrors + b.SendErrors, ReadErrors: a.ReadErrors + b.ReadErrors,
	}
}

// openLayer2 opens a real announcer and serves it until ctx ends.
func openLayer2(ctx context.Context, opts layer2.Options) (Interface, error) {
	a, err := layer2.New(opts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	go func() {
		if err := a.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("announcer stopped", "interface", opts.Interface, "err", err)
		}
	}()
	return a, nil
}

// lookupLink reads an interface's identity from the kernel.
func lookupLink(name string) (Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return Link{}, err
	}
	link := Link{Index: ifi.Index, HardwareAddr: ifi.HardwareAddr.String()}
	addrs, err := ifi.Addrs()
	if err != nil {
		return Link{}, err
	}
	link.LinkLocal = slices.ContainsFunc(addrs, func(a net.Addr) bool {
		ipn, ok := a.(*net.IPNet)
		return ok && ipn.IP.To4() == nil && ipn.IP.IsLinkLocalUnicast()
	})
	return link, nil
}
