package allocator

import "github.com/google/btree"

// interval is a maximal run [start, end] of used positions.
type interval struct{ start, end ordinal }

// intervalSet is a set of positions stored as disjoint, non-adjacent runs
// in a B-tree, so that memory grows with the number of runs (at most the
// number of used positions) and every operation is O(log runs).
type intervalSet struct {
	tree  *btree.BTreeG[interval]
	count ordinal
}

func lessInterval(a, b interval) bool { return a.start.cmp(b.start) < 0 }

func (s *intervalSet) init() {
	if s.tree == nil {
		s.tree = btree.NewG(16, lessInterval)
	}
}

// runAtOrBefore returns the run with the greatest start <= p.
func (s *intervalSet) runAtOrBefore(p ordinal) (interval, bool) {
	var found interval
	ok := false
	s.tree.DescendLessOrEqual(interval{start: p}, func(iv interval) bool {
		found, ok = iv, true
		return false
	})
	return found, ok
}

// add inserts p; it reports false if p was already present.
func (s *intervalSet) add(p ordinal) bool {
	s.init()
	left, hasLeft := s.runAtOrBefore(p)
	if hasLeft && p.cmp(left.end) <= 0 {
		return false
	}
	next := p.inc()
	right, hasRight := s.tree.Get(interval{start: next})
	hasRight = hasRight && next.cmp(p) > 0 // no wrap-around at the top
	joinLeft := hasLeft && left.end.inc() == p
	switch {
	case joinLeft && hasRight:
		s.tree.Delete(right)
		s.tree.ReplaceOrInsert(interval{left.start, right.end})
	case joinLeft:
		s.tree.ReplaceOrInsert(interval{left.start, p})
	case hasRight:
		s.tree.Delete(right)
		s.tree.ReplaceOrInsert(interval{p, right.end})
	default:
		s.tree.ReplaceOrInsert(interval{p, p})
	}
	s.count = s.count.inc()
	return true
}

// remove deletes p; it reports false if p was absent.
func (s *intervalSet) remove(p ordinal) bool {
	if s.tree == nil {
		return false
	}
	iv, ok := s.runAtOrBefore(p)
	if !ok || p.cmp(iv.end) > 0 {
		return false
	}
	s.tree.Delete(iv)
	if iv.start.cmp(p) < 0 {
		s.tree.ReplaceOrInsert(interval{iv.start, p.dec()})
	}
	if p.cmp(iv.end) < 0 {
		s.tree.ReplaceOrInsert(interval{p.inc(), iv.end})
	}
	s.count = s.count.dec()
	return true
}

// lowestAbsent returns the lowest position in [0, size) not in the set.
// Runs are maximal, so the answer is 0 or the end of the first run plus one.
func (s *intervalSet) lowestAbsent(size ordinal) (ordinal, bool) {
	var zero ordinal
	if size == zero {
		return zero, false
	}
	if s.tree == nil {
		return zero, true
	}
	first, ok := s.tree.Min()
	if !ok || first.start != zero {
		return zero, true
	}
	p := first.end.inc()
	if p.cmp(size) >= 0 || p == zero {
		return zero, false
	}
	return p, true
}
