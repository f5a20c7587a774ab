{{/* The chart name, overridable. */}}
{{- define "pharos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name if it contains "pharos",
else "<release>-pharos". Kept short enough for "-webhook-check" and the
other suffixes to fit in 63 characters.
*/}}
{{- define "pharos.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The namespace of every namespaced object: namespace.name, else the release
namespace. With namespace.create the chart creates it, and it must not be
the release namespace, which Helm needs before anything is created.
*/}}
{{- define "pharos.namespace" -}}
{{- if and .Values.namespace.create (or (not .Values.namespace.name) (eq .Values.namespace.name .Release.Namespace)) }}
{{- fail (printf "namespace.create=true needs namespace.name set to a namespace other than the release namespace %q: Helm stores the release in the release namespace before it creates anything, so the chart cannot create it. Use --create-namespace for the release namespace instead, or set namespace.name to another namespace." .Release.Namespace) }}
{{- end }}
{{- default .Release.Namespace .Values.namespace.name }}
{{- end }}

{{- define "pharos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "pharos.labels" -}}
helm.sh/chart: {{ include "pharos.chart" . }}
{{ include "pharos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pharos
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "pharos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pharos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pharos.controller.selectorLabels" -}}
{{ include "pharos.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "pharos.speaker.selectorLabels" -}}
{{ include "pharos.selectorLabels" . }}
app.kubernetes.io/component: speaker
{{- end }}

{{- define "pharos.controller.labels" -}}
{{ include "pharos.labels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "pharos.speaker.labels" -}}
{{ include "pharos.labels" . }}
app.kubernetes.io/component: speaker
{{- end }}

{{- define "pharos.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Object names. */}}
{{- define "pharos.controller.name" -}}{{ include "pharos.fullname" . }}-controller{{- end }}
{{- define "pharos.speaker.name" -}}{{ include "pharos.fullname" . }}-speaker{{- end }}
{{- define "pharos.webhook.name" -}}{{ include "pharos.fullname" . }}-webhook{{- end }}
{{- define "pharos.webhookCert.name" -}}{{ include "pharos.fullname" . }}-webhook-cert{{- end }}
{{- define "pharos.webhookCheck.name" -}}{{ include "pharos.fullname" . }}-webhook-check{{- end }}
{{- define "pharos.memberlist.name" -}}{{ include "pharos.fullname" . }}-memberlist{{- end }}
{{- define "pharos.controllerMetrics.name" -}}{{ include "pharos.fullname" . }}-controller-metrics{{- end }}
{{- define "pharos.speakerMetrics.name" -}}{{ include "pharos.fullname" . }}-speaker-metrics{{- end }}

{{/*
Whether pools and L2Advertisements are post-install hooks: on the first
install with the webhook on, they must wait until the controller serves the
webhook (see pools.yaml and webhook-check.yaml).
*/}}
{{- define "pharos.configAsHook" -}}
{{- if and .Release.IsInstall .Values.webhook.enabled (or .Values.pools .Values.l2Advertisements) }}true{{ end }}
{{- end }}

{{/*
The securityContext of a non-root Pharos pod (controller and webhook check).
*/}}
{{- define "pharos.nonRootPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "pharos.nonRootContainerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
Annotations of the pools and L2Advertisements created by the post-install
hook: the hook, and Helm's ownership annotations (the managed-by label is
in pharos.labels), so that the next upgrade adopts them.
*/}}
{{- define "pharos.configAnnotations" -}}
helm.sh/resource-policy: keep
{{- if include "pharos.configAsHook" . }}
helm.sh/hook: post-install
helm.sh/hook-weight: "10"
meta.helm.sh/release-name: {{ .Release.Name }}
meta.helm.sh/release-namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Names of the pools and of the L2Advertisements that values create, comma
separated: what the post-upgrade cleanup keeps.
*/}}
{{- define "pharos.valuesPoolNames" -}}
{{- $names := list }}
{{- range $i, $pool := .Values.pools }}
{{- $names = append $names ($pool.name | default (ternary "default" (printf "pool-%d" $i) (eq $i 0))) }}
{{- end }}
{{- join "," $names }}
{{- end }}

{{- define "pharos.valuesL2Names" -}}
{{- $names := list }}
{{- range $i, $pool := .Values.pools }}
{{- if or (not (hasKey $pool "l2Advertisement")) $pool.l2Advertisement }}
{{- $names = append $names ($pool.name | default (ternary "default" (printf "pool-%d" $i) (eq $i 0))) }}
{{- end }}
{{- end }}
{{- range .Values.l2Advertisements }}
{{- $names = append $names .name }}
{{- end }}
{{- join "," $names }}
{{- end }}
