{{/*
Rules that a JSON schema cannot express. Each fails rendering (and so
`helm install`/`helm template`) with one line that says what to change.
Included by validate.yaml, and first thing by every template that has a
`fail` of its own, so these messages win whatever order Helm renders in.
*/}}
{{- define "conveyor.validate" -}}
{{- $api := .Values.api }}
{{- $worker := .Values.worker }}

{{- if and $worker.autoscaling.enabled $worker.keda.enabled }}
{{- fail "worker.autoscaling.enabled and worker.keda.enabled are both true: a Deployment must have exactly one autoscaler (KEDA's ScaledObject creates its own HPA). Set one of them to false." }}
{{- end }}

{{- if not (lt (add $api.preStopSleepSeconds $api.gracefulTimeoutSeconds) (int $api.terminationGracePeriodSeconds)) }}
{{- fail (printf "api.terminationGracePeriodSeconds (%v) must be greater than api.preStopSleepSeconds + api.gracefulTimeoutSeconds (%v + %v), or in-flight requests are killed mid-drain." $api.terminationGracePeriodSeconds $api.preStopSleepSeconds $api.gracefulTimeoutSeconds) }}
{{- end }}

{{- if not (gt (int $worker.terminationGracePeriodSeconds) (int $worker.shutdownGraceSeconds)) }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be greater than worker.shutdownGraceSeconds (%v), or running jobs are killed before they finish or are re-queued." $worker.terminationGracePeriodSeconds $worker.shutdownGraceSeconds) }}
{{- end }}

{{- range $name, $v := dict "api" $api "worker" $worker }}
{{- if and $v.autoscaling.enabled (not (dig "requests" "cpu" "" $v.resources)) }}
{{- fail (printf "%s.autoscaling.enabled needs %s.resources.requests.cpu: the HPA scales on CPU utilization, a percentage of the request." $name $name) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%v) is greater than maxReplicas (%v)." $name $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- end }}

{{- if $worker.keda.enabled }}
{{- if gt (int $worker.keda.minReplicaCount) (int $worker.keda.maxReplicaCount) }}
{{- fail (printf "worker.keda.minReplicaCount (%v) is greater than maxReplicaCount (%v)." $worker.keda.minReplicaCount $worker.keda.maxReplicaCount) }}
{{- end }}
{{- if and .Values.secrets.existingSecret (not $worker.keda.authSecret.name) }}
{{- fail "worker.keda.enabled with secrets.existingSecret needs worker.keda.authSecret.name: a Secret with the broker's host:port (and password) for KEDA, which cannot parse a URL it cannot read." }}
{{- end }}
{{- end }}

{{- include "conveyor.validatePools" . }}

{{- if and .Values.loadgen.enabled (not .Values.loadgen.apiKey) (not .Values.loadgen.existingSecret) }}
{{- fail "loadgen.enabled needs loadgen.apiKey or loadgen.existingSecret (a Secret with the key CONVEYOR_API_KEY). Create a key with: kubectl exec deploy/<fullname>-api -- python scripts/create_api_key.py --tenant loadtest" }}
{{- end }}
{{- end }}
