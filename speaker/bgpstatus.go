package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/pharos-lb/pharos/api/v1beta1"
	"github.com/pharos-lb/pharos/internal/bgpannounce"
)

// secretPassword reads a BGP password from a kubernetes.io/basic-auth
// Secret's key "password". The password is never logged.
func secretPassword(c client.Client) func(context.Context, *corev1.SecretReference) (string, error) {
	return func(ctx context.Context, ref *corev1.SecretReference) (string, error) {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsForbidden(err) {
				return "", errors.New("the speaker may not read it: grant get on this Secret to its ServiceAccount, or use spec.password")
			}
			return "", err
		}
		pw, ok := s.Data["password"]
		if !ok || len(pw) == 0 {
			return "", errors.New(`it has no key "password"`)
		}
		return string(pw), nil
	}
}

// writeBGPStatus keeps this node's BGPNodeStatus in step with its BGP
// sessions: created on the first session, updated on change, polled every
// interval (prefix counts and BFD state have no change events).
func (s *Speaker) writeBGPStatus(ctx context.Context, c client.Client, rec recorder.EventRecorder, interval time.Duration) {
	var last *v1beta1.BGPNodeStatusStatus
	reported := map[string]string{} // peer -> last error reported by an event
	noObject := false               // this node has no BGPNodeStatus and needs none yet
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		sessions := s.bgp.Sessions(ctx)
		st := v1beta1.BGPNodeStatusStatus{Node: s.node, Prefixes: int32(s.bgp.Prefixes())}
		up := 0
		for _, ss := range sessions {
			if ss.State == "Established" {
				up++
			}
			st.Sessions = append(st.Sessions, sessionStatus(ss))
		}
		st.Established = fmt.Sprintf("%d/%d", up, len(sessions))
		for _, ss := range sessions {
			if ss.LastError == reported[ss.Peer] {
				continue
			}
			reported[ss.Peer] = ss.LastError
			if ss.LastError == "" {
				continue
			}
			var peer v1beta1.BGPPeer
			// From the cache: the speaker may list and watch BGPPeers, not get them.
			if err := s.client.Get(ctx, types.NamespacedName{Name: ss.Peer}, &peer); err == nil {
				rec.Eventf(&peer, nil, corev1.EventTypeWarning, "BGPSessionProblem", "Peer",
					"node %s, session with %s (%s): %s", s.node, ss.PeerAddress, ss.State, ss.LastError)
			}
		}
		if last != nil && equality.Semantic.DeepEqual(*last, st) {
			continue
		}
		if last == nil && len(sessions) == 0 {
			// No BGP on this node, and nothing written yet: no object,
			// unless an earlier run left one to clear. Asked once, not on
			// every tick of a node that never runs BGP.
			if noObject {
				continue
			}
			var existing v1beta1.BGPNodeStatus
			if err := c.Get(ctx, types.NamespacedName{Name: s.node}, &existing); apierrors.IsNotFound(err) {
				noObject = true
				continue
			}
		}
		if err := putBGPStatus(ctx, c, s.node, st); err != nil {
			s.log.Warn("writing BGPNodeStatus", "node", s.node, "err", err)
			continue
		}
		last = &st
	}
}

func sessionStatus(ss bgpannounce.Session) v1beta1.BGPSessionStatus {
	out := v1beta1.BGPSessionStatus{Peer: ss.Peer, PeerAddress: ss.PeerAddress, State: ss.State, BFDState: ss.BFDState,
		PrefixesSent: int32(ss.PrefixesSent), PrefixesReceived: int32(ss.PrefixesReceived), LastError: ss.LastError}
	if !ss.Since.IsZero() {
		// Whole seconds: the object changes only when the state does.
		t := metav1.NewTime(ss.Since.Truncate(time.Second))
		out.Since = &t
	}
	return out
}

func putBGPStatus(ctx context.Context, c client.Client, node string, st v1beta1.BGPNodeStatusStatus) error {
	var obj v1beta1.BGPNodeStatus
	err := c.Get(ctx, types.NamespacedName{Name: node}, &obj)
	if apierrors.IsNotFound(err) {
		obj = v1beta1.BGPNodeStatus{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: st}
		return c.Create(ctx, &obj)
	}
	if err != nil {
		return err
	}
	obj.Status = st
	return c.Update(ctx, &obj)
}
