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
# The rules match only ResourceScalingGroups, so they apply in every namespace (rsg's own
# included) and nothing rsg needs to start goes through them; with watchNamespaces, only in
# those namespaces.
{{- with .watchNamespaces }}
namespaceSelector:
  matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: In, values: {{ toJson . }}}
{{- end }}
clientConfig:
  service: {name: {{ .name }}, namespace: {{ .ns }}, path: {{ .path }}, port: 443}
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}

{{- /* rsg's rights over namespaced objects: cluster-wide, or in each of watchNamespaces. */}}
{{- define "rsg.namespacedRules" }}
- apiGroups: [autoscaling.openfuyao.com]
  resources: [resourcescalinggroups]
  verbs: [get, list, watch]
- apiGroups: [autoscaling.openfuyao.com]
  resources: [resourcescalinggroups/status]
  verbs: [patch]
# Namespaces' consent to RSGs of other namespaces.
- apiGroups: [autoscaling.openfuyao.com]
  resources: [resourcescalinggroupgrants]
  verbs: [list, watch]
# Admission and the controller ask whether an RSG's author may act on the targets themselves.
- apiGroups: [authorization.k8s.io]
  resources: [localsubjectaccessreviews]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [leaderworkerset.x-k8s.io]
  resources: [leaderworkersets]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [workloads.x-k8s.io]
  resources: [rolebasedgroups]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, patch]
- apiGroups: [""]
  resources: [serviceaccounts, persistentvolumeclaims]
  verbs: [get]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{- /* Reads of cluster-scoped objects, in every mode. */}}
{{- define "rsg.clusterReadRules" }}
# Target namespaces' labels, read when the operator narrows where targets may live.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
# Node names and labels only (read as metadata): the domain each group's pods landed in.
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch]
{{- end }}
