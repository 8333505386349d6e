{{/* Names ---------------------------------------------------------------- */}}

{{- define "conveyor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-conveyor, or the release name when it already contains the chart name.
Truncated to 48 so that the longest derived name, "<fullname>-worker-metrics",
stays within the 63 characters of a DNS label. */}}
{{- define "conveyor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "conveyor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "conveyor.fullname" .) }}
{{- end }}

{{- define "conveyor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conveyor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels: call with (dict "ctx" $ "component" "api"). ----------------- */}}

{{- define "conveyor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "conveyor.labels" -}}
helm.sh/chart: {{ include "conveyor.chart" .ctx }}
{{ include "conveyor.selectorLabels" . }}
app.kubernetes.io/version: {{ include "conveyor.tag" .ctx | quote }}
app.kubernetes.io/part-of: conveyor
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* Labels for objects that belong to no single component (ConfigMap, Secret, ...). */}}
{{- define "conveyor.commonLabels" -}}
helm.sh/chart: {{ include "conveyor.chart" . }}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "conveyor.tag" . | quote }}
app.kubernetes.io/part-of: conveyor
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Images ------------------------------------------------------------------ */}}

{{- define "conveyor.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* (dict "ctx" $ "repository" "...") */}}
{{- define "conveyor.image" -}}
{{- printf "%s:%s" .repository (include "conveyor.tag" .ctx) }}
{{- end }}

{{/* Environment ------------------------------------------------------------- */}}

{{/* Non-secret settings shared by every process: the ConfigMap's data, and the
migration Job's inline env (a pre-install hook cannot use the release's ConfigMap). */}}
{{- define "conveyor.configData" -}}
{{- $otel := .Values.config.otel -}}
PORT: {{ .Values.api.port | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
LOG_FORMAT: {{ .Values.config.logFormat | quote }}
WORKER_CONCURRENCY: {{ .Values.worker.concurrency | quote }}
METRICS_PORT: {{ .Values.worker.metricsPort | quote }}
JOB_LEASE_SECONDS: {{ .Values.config.jobLeaseSeconds | quote }}
RECONCILE_INTERVAL_SECONDS: {{ .Values.config.reconcileIntervalSeconds | quote }}
RECONCILE_QUEUED_AFTER_SECONDS: {{ .Values.config.reconcileQueuedAfterSeconds | quote }}
GRACEFUL_TIMEOUT_SECONDS: {{ .Values.api.gracefulTimeoutSeconds | quote }}
WORKER_SHUTDOWN_GRACE_SECONDS: {{ .Values.worker.shutdownGraceSeconds | quote }}
RATE_LIMIT_PER_MINUTE: {{ .Values.config.rateLimitPerMinute | quote }}
IDEMPOTENCY_TTL_HOURS: {{ .Values.config.idempotencyTtlHours | quote }}
JOB_RETENTION_DAYS: {{ .Values.config.jobRetentionDays | quote }}
# The worker's and the scheduler's liveness probes read the file their loops touch.
HEARTBEAT_FILE: "/tmp/conveyor.heartbeat"
{{- with $otel.exporterOtlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
OTEL_TRACES_EXPORTER: {{ $otel.tracesExporter | default (ternary "otlp" "none" (ne $otel.exporterOtlpEndpoint "")) | quote }}
OTEL_TRACES_SAMPLER: {{ $otel.tracesSampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ $otel.tracesSamplerArg | quote }}
{{- range $k, $v := $otel.env }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/* Env every Conveyor container gets besides the ConfigMap: the secret URLs by
key (so only these three names enter the process), and the OTel identity.
K8S_POD_NAME, K8S_NAMESPACE_NAME and K8S_NODE_NAME exist only so that
OTEL_RESOURCE_ATTRIBUTES can expand them: Kubernetes has no other way to put
downward-API fields inside a string. Call with (dict "ctx" $ "component" "api"
"secretName" "..."). */}}
{{- define "conveyor.env" -}}
{{- $otel := .ctx.Values.config.otel -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ .secretName }}, key: DATABASE_URL}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ .secretName }}, key: REDIS_URL}
- name: CELERY_BROKER_URL
  valueFrom:
    secretKeyRef: {name: {{ .secretName }}, key: CELERY_BROKER_URL, optional: true}
- name: OTEL_SERVICE_NAME
  value: {{ printf "%s-%s" $otel.serviceNamePrefix .component | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef: {fieldPath: spec.nodeName}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" "k8s.node.name=$(K8S_NODE_NAME)" $otel.resourceAttributes | compact | join "," | quote }}
{{- end }}

{{/* Pod-level pieces ------------------------------------------------------- */}}

{{/* The pod spec fields every workload shares (serviceAccountName aside, see
migrate-job.yaml). Call with the root context. */}}
{{- define "conveyor.podCommon" -}}
automountServiceAccountToken: false
# No docker-link style *_SERVICE_HOST/*_PORT variables: the env stays exactly
# what the chart sets (a Service named e.g. "redis" would otherwise inject REDIS_PORT).
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{/* nodeSelector / affinity / tolerations / topologySpreadConstraints of one
component. A spread constraint without labelSelector gets the component's
selector labels. Call with (dict "ctx" $ "component" "api" "values" .Values.api). */}}
{{- define "conveyor.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
{{- $selector := include "conveyor.selectorLabels" . | fromYaml }}
topologySpreadConstraints:
  {{- range .values.topologySpreadConstraints }}
  {{- $c := deepCopy . }}
  {{- if not (hasKey $c "labelSelector") }}
  {{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
  {{- end }}
  - {{- toYaml $c | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Container-level pieces shared by every container. */}}
{{- define "conveyor.containerCommon" -}}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* Pod annotations: config/secret checksums (so a config change rolls the
pods), optional Prometheus scrape annotations, and the user's. Call with
(dict "ctx" $ "podAnnotations" .Values.api.podAnnotations "metricsPort" 8000). */}}
{{- define "conveyor.podAnnotations" -}}
{{- $ctx := .ctx -}}
checksum/config: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
{{- if not $ctx.Values.secrets.existingSecret }}
checksum/secret: {{ include (print $ctx.Template.BasePath "/secret.yaml") $ctx | sha256sum }}
{{- end }}
{{- if and .metricsPort $ctx.Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .metricsPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* True when a component is guaranteed more than one pod, the only case where
a PodDisruptionBudget cannot block a node drain. */}}
{{- define "conveyor.multiReplica" -}}
{{- $v := .values }}
{{- if and (hasKey $v "keda") $v.keda.enabled }}
{{- if gt (int $v.keda.minReplicaCount) 1 }}true{{ end }}
{{- else if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int $v.replicas) 1 }}true
{{- end }}
{{- end }}

{{/* The chart-managed Secret's data (shared with the migration hook's copy). */}}
{{- define "conveyor.secretData" -}}
DATABASE_URL: {{ .Values.secrets.databaseUrl | b64enc | quote }}
REDIS_URL: {{ .Values.secrets.redisUrl | b64enc | quote }}
{{- with .Values.secrets.celeryBrokerUrl }}
CELERY_BROKER_URL: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* checkov skips, one annotation per check, each with its reason (checkov reads
"checkov.io/skipN: <check id>=<reason>" from the object's own metadata; the
reason must not contain "="). Call with a list of check ids, or of "<id>=<reason>"
for a reason of the caller's own. Where a check's
advice was right the chart follows it instead (namespaces, probes, hardening). */}}
{{- define "conveyor.checkovSkips" -}}
{{- $reasons := dict
  "CKV_K8S_11" "no CPU limit on purpose - CFS throttling stalls requests and heartbeats; requests.cpu reserves the share and drives the HPA"
  "CKV_K8S_15" "image.pullPolicy is the operator's choice - IfNotPresent suits immutable release tags and kind-loaded images"
  "CKV_K8S_35" "twelve-factor config - the processes read DATABASE_URL and REDIS_URL from env only, each by secretKeyRef"
  "CKV_K8S_43" "images are addressed by release tag (image.tag) - a digest needs a registry the chart cannot assume"
  "CKV_K8S_8" "scheduler.livenessProbe is null - its heartbeat probe was turned off on purpose"
  "CKV_K8S_9" "no Service routes to this pod - readiness gates only endpoints"
}}
{{- range $i, $id := . }}
checkov.io/skip{{ add1 $i }}: {{ ternary $id (printf "%s=%s" $id (get $reasons $id)) (contains "=" $id) | quote }}
{{- end }}
{{- end }}
