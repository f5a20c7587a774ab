{{/*
The monitoring values: monitoring.*, with the former spelling prometheus.*
(prometheus.serviceMonitor, prometheus.prometheusRule) still honoured:
either `enabled` turns a part on, and the former keys' other settings win
when set. Returns YAML; use it as (include "pharos.monitoring" . | fromYaml).
*/}}
{{- define "pharos.monitoring" -}}
{{- $m := deepCopy (.Values.monitoring | default dict) -}}
{{- $old := .Values.prometheus | default dict -}}
{{- range $part := list "serviceMonitor" "prometheusRule" "grafanaDashboard" }}
{{- $new := get $m $part | default dict }}
{{- $former := get $old $part | default dict }}
{{- range $k, $v := $former }}
{{- if eq $k "enabled" }}
{{- $_ := set $new "enabled" (or $new.enabled $v) }}
{{- else if $v }}
{{- $_ := set $new $k $v }}
{{- end }}
{{- end }}
{{- $_ := set $m $part $new }}
{{- end }}
{{- toYaml $m }}
{{- end }}
