package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pharos-lb/pharos/hack/image/ociimage"
)

// maxGrace caps a Pharos pod's termination grace period, so that a chart
// asking for minutes cannot stall the lab's pod workers (and tests) that
// long.
const maxGrace = 30 * time.Second

// pharosPod is how the agent runs a pod of Pharos's image: as a real
// process of one of Pharos's binaries, rather than an echo server. It holds
// everything that follows from the spec alone; the environment and argv
// need the pod's addresses and are built at each start.
type pharosPod struct {
	container     *corev1.Container
	binary        string // on this machine
	uid, gid      int64
	groups        []int64
	caps          []string // the container's capabilities (securityContext)
	hostNetwork   bool
	restartPolicy corev1.RestartPolicy
	grace         time.Duration
	credentials   bool // whether the pod gets its ServiceAccount's token

	// What the container's securityContext asks of the runtime.
	readOnlyRoot bool   // readOnlyRootFilesystem
	noNewPrivs   bool   // allowPrivilegeEscalation: false
	seccomp      string // "runtime-default" or "unconfined"
	// The container's emptyDir volumes, which the agent keeps for the
	// pod's life and the launcher mounts.
	volumes []podVolume
}

// podVolume is an emptyDir volume at one of the container's mountPaths.
type podVolume struct {
	name, mountPath string
	readOnly        bool
}

// imageRepository returns image without its tag and digest:
// "ghcr.io/pharos-lb/pharos:v1@sha256:..." -> "ghcr.io/pharos-lb/pharos".
// A colon before the last slash is a registry port, not a tag.
func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// pharosPodOf says whether pod is a Pharos pod and, if so, how to run it.
// ok is false for every other pod (they get the echo server). err says why
// a Pharos pod cannot run in the lab; it is reported on the pod rather than
// falling back to an echo server that would only pretend to be Pharos.
func (o *Options) pharosPodOf(pod *corev1.Pod) (pp *pharosPod, ok bool, err error) {
	if o.PharosImage == "" {
		return nil, false, nil
	}
	isPharos := func(c corev1.Container) bool { return imageRepository(c.Image) == o.PharosImage }
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		ok = ok || isPharos(c)
	}
	if !ok {
		return nil, false, nil
	}
	if len(pod.Spec.InitContainers) > 0 || len(pod.Spec.Containers) != 1 {
		return nil, true, fmt.Errorf("the lab node agent runs a pod of %s only with exactly one container and no init containers", o.PharosImage)
	}
	c := &pod.Spec.Containers[0]
	if o.PharosImageRef != "" && c.Image != o.PharosImageRef {
		return nil, true, fmt.Errorf("image %s is not on this node, which has only %s (the lab's image archive), and no registry is reachable: set the chart's image.repository and image.tag to it", c.Image, o.PharosImageRef)
	}
	binary, err := o.pharosBinary(c.Command)
	if err != nil {
		return nil, true, err
	}
	pp = &pharosPod{
		container:     c,
		binary:        binary,
		hostNetwork:   pod.Spec.HostNetwork,
		restartPolicy: pod.Spec.RestartPolicy,
		grace:         maxGrace,
		// The ServiceAccount admission plugin and the kubelet skip the
		// token only when told to; a ServiceAccount's own
		// automountServiceAccountToken is not looked up here.
		credentials: pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken,
	}
	if pp.restartPolicy == "" {
		pp.restartPolicy = corev1.RestartPolicyAlways
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		pp.grace = min(time.Duration(*g)*time.Second, maxGrace)
	}
	if pp.caps, err = containerCaps(c); err != nil {
		return nil, true, err
	}
	if pp.uid, pp.gid, pp.groups, err = runAs(pod, c, o.PharosUID, o.PharosGID); err != nil {
		return nil, true, err
	}
	if sc := c.SecurityContext; sc != nil {
		pp.readOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		pp.noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	}
	if pp.seccomp, err = seccompOf(pod, c); err != nil {
		return nil, true, err
	}
	if pp.volumes, err = containerVolumes(pod, c); err != nil {
		return nil, true, err
	}
	for _, v := range pp.volumes {
		// The pod reads its kubeconfig and token there, by path.
		if pp.credentials && o.StateDir != "" && (v.mountPath == "/" || o.StateDir == v.mountPath || strings.HasPrefix(o.StateDir, v.mountPath+"/")) {
			return nil, true, fmt.Errorf("container %s mounts volume %q at %s, which would hide the lab's %s where its token is", c.Name, v.name, v.mountPath, o.StateDir)
		}
	}
	return pp, true, nil
}

// seccompOf returns the seccomp profile a container runs under, as the
// kubelet and containerd decide it: the container's seccompProfile, else
// the pod's, else none (Unconfined: the kubelet's default without
// --seccomp-default); a privileged container runs without one. Localhost
// profiles are not supported.
func seccompOf(pod *corev1.Pod, c *corev1.Container) (string, error) {
	var p *corev1.SeccompProfile
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		p = sc.SeccompProfile
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.SeccompProfile != nil {
			p = sc.SeccompProfile
		}
		if sc.Privileged != nil && *sc.Privileged {
			return "unconfined", nil
		}
	}
	switch {
	case p == nil || p.Type == corev1.SeccompProfileTypeUnconfined:
		return "unconfined", nil
	case p.Type == corev1.SeccompProfileTypeRuntimeDefault:
		if nativeSeccompTarget() == nil {
			_, err := runtimeDefaultFilter(nil, nil)
			return "", err
		}
		return "runtime-default", nil
	}
	return "", fmt.Errorf("container %s: the lab node agent runs seccompProfile RuntimeDefault or Unconfined, not %s", c.Name, p.Type)
}

// containerVolumes returns the container's emptyDir volumes. The projected
// volume of the ServiceAccount's token that admission adds is left out:
// the agent gives the token through KUBECONFIG (credentials). Any other
// kind of volume, and subPath, are refused rather than silently missing.
func containerVolumes(pod *corev1.Pod, c *corev1.Container) ([]podVolume, error) {
	var out []podVolume
	for _, vm := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		switch {
		case vol == nil:
			return nil, fmt.Errorf("container %s mounts volume %q, which the pod does not have", c.Name, vm.Name)
		case vol.Projected != nil && slices.ContainsFunc(vol.Projected.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil }):
			continue
		case vol.EmptyDir == nil:
			return nil, fmt.Errorf("container %s mounts volume %q: the lab node agent mounts only emptyDir volumes", c.Name, vm.Name)
		case vm.SubPath != "" || vm.SubPathExpr != "":
			return nil, fmt.Errorf("container %s mounts volume %q with a subPath, which the lab node agent does not support", c.Name, vm.Name)
		case !path.IsAbs(vm.MountPath) || strings.Contains(vm.MountPath, ":"):
			return nil, fmt.Errorf("container %s mounts volume %q at %q: the lab node agent needs an absolute path without ':'", c.Name, vm.Name, vm.MountPath)
		}
		out = append(out, podVolume{name: vm.Name, mountPath: path.Clean(vm.MountPath), readOnly: vm.ReadOnly})
	}
	return out, nil
}

// pharosBinary is the file on this machine that a Pharos container's
// command runs: command[0] resolved inside PharosRootfs (it must be an
// executable file of the image), or the binary PharosBinaries names for
// it.
func (o *Options) pharosBinary(command []string) (string, error) {
	if len(command) == 0 {
		return "", fmt.Errorf("the lab node agent runs %s only with a command (the image's entrypoint is not looked up)", o.PharosImage)
	}
	if o.PharosRootfs == "" {
		if b := o.PharosBinaries[command[0]]; b != "" {
			return b, nil
		}
		return "", fmt.Errorf("the lab node agent runs %s only with command[0] one of %s; got command %q",
			o.PharosImage, strings.Join(slices.Sorted(maps.Keys(o.PharosBinaries)), ", "), command)
	}
	if !path.IsAbs(command[0]) {
		// The image sets no PATH to look it up in.
		return "", fmt.Errorf("command[0] %q is not an absolute path of the image", command[0])
	}
	p, err := ociimage.Resolve(o.PharosRootfs, command[0])
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("command[0] %s is not in the image (unpacked in %s)", command[0], o.PharosRootfs)
	case err != nil:
		return "", err
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("command[0] %s of the image is not an executable file (mode %s)", command[0], fi.Mode())
	}
	return p, nil
}

// runAs returns the user, group and supplementary groups a container runs
// with, as a container runtime derives them: runAsUser and runAsGroup from
// the container's securityContext, else the pod's, else the image's USER
// (imageUID:imageGID). With runAsUser set but no runAsGroup, the group is
// the image user's when the user is that one, and root otherwise, which is
// what a runtime finds in the distroless image's /etc/passwd. The pod's
// supplementalGroups and fsGroup become supplementary groups.
func runAs(pod *corev1.Pod, c *corev1.Container, imageUID, imageGID int64) (uid, gid int64, groups []int64, err error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	pick := func(a, b *int64) *int64 {
		if a != nil {
			return a
		}
		return b
	}
	uid = imageUID
	if u := pick(csc.RunAsUser, psc.RunAsUser); u != nil {
		uid = *u
	}
	gid = 0
	if uid == imageUID {
		gid = imageGID
	}
	if g := pick(csc.RunAsGroup, psc.RunAsGroup); g != nil {
		gid = *g
	}
	if nonRoot := firstBool(csc.RunAsNonRoot, psc.RunAsNonRoot); nonRoot && uid == 0 {
		return 0, 0, nil, fmt.Errorf("container %s has runAsNonRoot and would run as root (uid 0)", c.Name)
	}
	groups = append(groups, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return uid, gid, groups, nil
}

// firstBool returns the first of a, b that is set, or false.
func firstBool(a, b *bool) bool {
	if a != nil {
		return *a
	}
	return b != nil && *b
}

// restarts reports whether a container that exited with code is started
// again under policy.
func restarts(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}
