{{/*
The chart's name: `app.kubernetes.io/name`, and the base of resource names.
*/}}
{{- define "kubetriage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: the release name, with the chart's name appended when the
release name does not contain it already. Truncated to 63 characters (a DNS label).
*/}}
{{- define "kubetriage.fullname" -}}
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

{{/*
Chart name and version, for the `helm.sh/chart` label.
*/}}
{{- define "kubetriage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator's pods; they never change across upgrades.
*/}}
{{- define "kubetriage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetriage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object of the release.
*/}}
{{- define "kubetriage.labels" -}}
helm.sh/chart: {{ include "kubetriage.chart" . }}
{{ include "kubetriage.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetriage
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "kubetriage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubetriage.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's image, its tag defaulting to the chart's appVersion.
*/}}
{{- define "kubetriage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The leader-election Lease's name.
*/}}
{{- define "kubetriage.leaseName" -}}
{{- default (include "kubetriage.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Whether the metrics Service is rendered: asked for, or needed by the ServiceMonitor.
*/}}
{{- define "kubetriage.metricsService" -}}
{{- if or .Values.metrics.service.enabled .Values.metrics.serviceMonitor.enabled }}true{{- end }}
{{- end }}

{{/*
Combinations of values the schema cannot express; each fails the render with what to change.
*/}}
{{- define "kubetriage.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: every replica would diagnose every workload and write the same reports and Linear issues. Set leaderElection.enabled=true, or replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- $election := .Values.leaderElection }}
{{- if and $election.enabled (not (lt (float64 $election.renewDeadlineSeconds) (float64 $election.leaseSeconds))) }}
{{- fail (printf "leaderElection.renewDeadlineSeconds (%v) must be less than leaderElection.leaseSeconds (%v): the leader must give up before a follower may take over." $election.renewDeadlineSeconds $election.leaseSeconds) }}
{{- end }}
{{- if and $election.enabled (not (lt (float64 $election.retrySeconds) (float64 $election.renewDeadlineSeconds))) }}
{{- fail (printf "leaderElection.retrySeconds (%v) must be less than leaderElection.renewDeadlineSeconds (%v): the leader must be able to retry a renewal before its deadline." $election.retrySeconds $election.renewDeadlineSeconds) }}
{{- end }}
{{- if .Values.linear.enabled }}
{{- if not .Values.linear.existingSecret }}
{{- fail "linear.enabled is true but linear.existingSecret is empty: create a Secret holding the Linear API key (kubectl create secret generic linear-credentials --from-literal=api-key=...) in the release namespace and set linear.existingSecret to its name. The chart never takes the key as a value." }}
{{- end }}
{{- if not .Values.linear.teamId }}
{{- fail "linear.enabled is true but linear.teamId is empty: set it to the id of the Linear team that issues are opened in." }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (le (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable)) }}
{{- fail (printf "podDisruptionBudget.enabled with replicaCount %d and minAvailable %d would forbid every eviction and block node drains: raise replicaCount above minAvailable (with leaderElection.enabled), or turn the budget off." (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable)) }}
{{- end }}
{{- end }}
