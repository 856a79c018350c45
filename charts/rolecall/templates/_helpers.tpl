{{/* The chart name, shortened to what Kubernetes names allow. */}}
{{- define "rolecall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object the chart creates. */}}
{{- define "rolecall.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rolecall.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rolecall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rolecall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rolecall.labels" -}}
helm.sh/chart: {{ include "rolecall.chart" . }}
{{ include "rolecall.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rolecall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rolecall.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rolecall.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Leader election is on when asked for, and always with more than one replica. */}}
{{- define "rolecall.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/*
What the operator does against the Kubernetes API, one rule per concern (tests/rbac.rs removes
each in turn and shows something breaks):
- its four kinds: get (referenced objects), list and watch (controllers), patch (finalizers,
  a JSON patch on the object);
- their status: server-side apply;
- Events, through kube's Recorder (create, then patch a series);
- with rbac.userSecrets, Secrets: get (is the named Secret this IamUser's?), create (the
  password or key, owned by the IamUser), patch (a rotated key), list and watch (the metadata
  of the Secrets carrying rolecall's label, so a deleted or edited one wakes its IamUser at
  once), delete (a Secret rolecall made, once the access it holds is off or the user goes).
  RBAC cannot narrow list to a label: the operator's code asks only for its label's metadata.
*/}}
{{- define "rolecall.rules" -}}
- apiGroups: ["iam.rolecall.dev"]
  resources: ["iampolicies", "iamroles", "instanceprofiles", "ec2instancebindings", "iamgroups", "iamusers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["iam.rolecall.dev"]
  resources: ["iampolicies/status", "iamroles/status", "instanceprofiles/status", "ec2instancebindings/status", "iamgroups/status", "iamusers/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.userSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end }}
