package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer is the netlink socket buffer size Sync asks for. A batch is
// one sendmsg, which the kernel refuses when it exceeds the send buffer,
// and the kernel acknowledges (and echoes) every message of it into the
// receive buffer before we read: 1,000 frontends take about 1 MiB each
// way. SO_SNDBUFFORCE/SO_RCVBUFFORCE need CAP_NET_ADMIN, which programming
// nftables needs anyway.
const socketBuffer = 32 << 20

// Options configures a Dataplane.
type Options struct {
	// Table is the name of the inet table the Dataplane owns; empty means
	// DefaultTable.
	Table string
	// NetNS is a file descriptor of the network namespace to program; 0
	// means the caller's. The caller keeps it open while the Dataplane is
	// in use, and closes it.
	NetNS int
	// Logger receives the Dataplane's logs; nil discards them.
	Logger *slog.Logger
}

// Dataplane writes Rulesets into one nftables table. Its methods are safe
// for concurrent use.
type Dataplane struct {
	table string
	netns int
	conn  *nftables.Conn
	log   *slog.Logger

	mu       sync.Mutex
	last     *Ruleset            // what the last successful Sync wrote; nil before
	want     fingerprint         // last's fingerprint
	services map[string][]string // Service -> its counters, from last
}

// counterValue carries a counter across a Sync, which recreates it.
type counterValue struct{ packets, bytes uint64 }

// New returns a Dataplane for opts. It checks that nf_tables can be
// programmed (CAP_NET_ADMIN, nf_tables in the kernel) but writes nothing:
// the table appears at the first Sync.
func New(opts Options) (*Dataplane, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	connOpts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if opts.NetNS != 0 {
		connOpts = append(connOpts, nftables.WithNetNSFd(opts.NetNS))
	}
	c, err := nftables.New(connOpts...)
	if err != nil {
		return nil, explain("opening a netfilter netlink socket", opts.Table, err)
	}
	// Listing needs the same rights as writing (nfnetlink checks
	// CAP_NET_ADMIN for every message), so a failure here is the error
	// Sync would meet, found early.
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		_ = c.CloseLasting()
		return nil, explain("listing nftables tables", opts.Table, err)
	}
	return &Dataplane{table: opts.Table, netns: opts.NetNS, conn: c, log: opts.Logger}, nil
}

// bigBuffers raises the socket's buffers, forcing past the system maximum
// when allowed, so that a large batch fits; see socketBuffer.
func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var forced error
	if err := rc.Control(func(fd uintptr) {
		forced = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer))
	}); err != nil {
		return err
	}
	if forced != nil {
		// Without CAP_NET_ADMIN; Sync will fail with a clear error, but
		// the socket itself is fine.
		_ = c.SetWriteBuffer(socketBuffer)
		_ = c.SetReadBuffer(socketBuffer)
	}
	return nil
}

// Table returns the name of the table the Dataplane owns.
func (d *Dataplane) Table() string { return d.table }

// Sync makes the table match cfg: in one transaction it deletes the table
// if it exists and builds it again from Plan(cfg). It is level-triggered:
// calling it again with the same cfg rewrites the same table, which also
// repairs any change made behind our back. If cfg is invalid, nothing is
// written and the error names each Service at fault.
//
// Drop counters survive: their values are read just before the
// transaction and written into the new counters, so that packets counted
// in between are lost but counts never go back to zero.
func (d *Dataplane) Sync(cfg Config) error {
	rs, err := Plan(cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	carried, err := d.readCounters()
	if err != nil {
		d.log.Warn("dataplane: drop counters could not be read and restart from zero", "table", d.table, "error", err)
	}
	start := time.Now()
	if err := queue(d.conn, d.table, rs, carried); err != nil {
		return err
	}
	if err := d.conn.Flush(); err != nil {
		return explain("writing the table in one transaction", d.table, err)
	}
	d.last = rs
	d.want = planned(rs)
	d.services = rs.services()
	d.log.Debug("dataplane: table synced", "table", d.table, "frontends", len(rs.Counters),
		"chains", len(rs.Chains), "took", time.Since(start))
	return nil
}

// Check reports whether the kernel's table still matches what the last
// Sync wrote, comparing a fingerprint: the chains and their rule counts,
// the maps and their element counts, the counters. It catches
// `nft flush table`, deleted rules, chains or elements, and a deleted
// table; it does not compare rule contents. When Check reports false, the
// caller Syncs again. Before the first Sync there is nothing to match and
// Check reports true.
func (d *Dataplane) Check() (intact bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		return true, nil
	}
	got, err := d.observe()
	if err != nil {
		return false, explain("reading the table back", d.table, err)
	}
	if !maps.Equal(got, d.want) {
		d.log.Info("dataplane: table differs from the last Sync", "table", d.table, "differences", diff(d.want, got))
		return false, nil
	}
	return true, nil
}

// Dropped returns how many packets to service's frontends were dropped
// (source outside SourceRanges) or rejected (no backends), read from the
// kernel's counters. A Service that the last Sync did not program has
// none.
func (d *Dataplane) Dropped(service string) (packets uint64, err error) {
	all, err := d.DroppedByService()
	return all[service], err
}

// DroppedByService returns Dropped for every Service that the last Sync
// programmed, from one read of the kernel's counters.
func (d *Dataplane) DroppedByService() (map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.services) == 0 {
		return nil, nil
	}
	values, err := d.readCounters()
	if err != nil {
		return nil, explain("reading drop counters", d.table, err)
	}
	out := make(map[string]uint64, len(d.services))
	for svc, names := range d.services {
		for _, n := range names {
			out[svc] += values[n].packets
		}
	}
	return out, nil
}

// Close deletes the table and closes the netlink socket. The Dataplane
// cannot be used afterwards.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := &nftables.Table{Name: d.table, Family: nftables.TableFamilyINet}
	// Add then delete, so that a table that is already gone is no error.
	d.conn.AddTable(t)
	d.conn.DelTable(t)
	err := d.conn.Flush()
	d.last, d.services = nil, nil
	return errors.Join(explainIf("deleting the table", d.table, err), d.conn.CloseLasting())
}

// readCounters returns the table's counters by name; a missing table has
// none.
func (d *Dataplane) readCounters() (map[string]counterValue, error) {
	objs, err := d.conn.GetObjects(&nftables.Table{Name: d.table, Family: nftables.TableFamilyINet})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	values := make(map[string]counterValue, len(objs))
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok && c.Table != nil && c.Table.Name == d.table {
			values[c.Name] = counterValue{packets: c.Packets, bytes: c.Bytes}
		}
	}
	return values, nil
}

// explain turns a kernel error into one that says what failed and what to
// do about it.
func explain(what, table string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		hint = "; this needs CAP_NET_ADMIN in the node's network namespace: run the speaker with the NET_ADMIN capability"
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		hint = "; the kernel has no nf_tables netlink interface: load the nf_tables module (CONFIG_NF_TABLES)"
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT) && what != "reading the table back":
		hint = "; the kernel lacks an nftables feature this table uses: load nft_nat, nft_masq, nft_hash, nft_ct, nft_reject_inet and nf_conntrack, on kernel 5.2 or later"
	case errors.Is(err, unix.EMSGSIZE), errors.Is(err, unix.ENOBUFS):
		hint = "; the batch is larger than the netlink socket buffer: fewer frontends per node, or raise net.core.wmem_max and rmem_max"
	}
	return fmt.Errorf("dataplane: table inet %s: %s: %w%s", table, what, err, hint)
}

func explainIf(what, table string, err error) error {
	if err == nil {
		return nil
	}
	return explain(what, table, err)
}
