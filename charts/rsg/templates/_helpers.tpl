{{/* Name of every object of this release. */}}
{{- define "rsg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rsg.namespace" -}}
{{- required "namespace.name is required" .Values.namespace.name -}}
{{- end -}}

{{- define "rsg.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rsg.labels" -}}
{{ include "rsg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rsg.tlsSecret" -}}
{{- printf "%s-webhook-tls" (include "rsg.fullname" .) -}}
{{- end -}}

{{- define "rsg.admissionKeySecret" -}}
{{- printf "%s-admission-key" (include "rsg.fullname" .) -}}
{{- end -}}

{{- define "rsg.leaseName" -}}
{{- printf "%s-leader" (include "rsg.fullname" .) -}}
{{- end -}}

{{/* The parts both webhook configurations share. */}}
{{- define "rsg.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
failurePolicy: {{ .values.failurePolicy }}
timeoutSeconds: {{ .values.timeoutSeconds }}
# No namespaceSelector: the rules match only ResourceScalingGroups, so they apply in every
# namespace, rsg's own included, and nothing rsg needs to start goes through them.
clientConfig:
  service: {name: {{ .name }}, namespace: {{ .ns }}, path: {{ .path }}, port: 443}
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}
