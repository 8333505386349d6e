{{/* Worker pools ------------------------------------------------------------

Each entry of workerPools is a Deployment of workers serving its `queues`
(every queue when empty), with its own replicas, resources, autoscaler (HPA or
KEDA on its queues' lists) and PDB. A pool's other keys override `worker`'s,
which hold every pool's defaults. Empty workerPools means one pool, `all`,
serving every queue. The pool `all` keeps the names and labels of the single
worker from before pools (`<fullname>-worker`, component `worker`), so an
upgrade changes no Deployment; pool `cpu` is `<fullname>-worker-cpu`, component
`worker-cpu`. Selectors match on the component, so no two pools' overlap.
*/}}

{{/* The queues kinds go to: the registry's (kinds.py) plus config.kindQueues'. */}}
{{- define "conveyor.queues" -}}
{{- $queues := list "cpu" "default" "io" }}
{{- range $kind, $queue := .Values.config.kindQueues }}
{{- $queues = append $queues $queue }}
{{- end }}
{{- $queues | uniq | sortAlpha | toJson }}
{{- end }}

{{/* KIND_QUEUES for the ConfigMap: config.kindQueues as kind=queue,... */}}
{{- define "conveyor.kindQueues" -}}
{{- $entries := list }}
{{- range $kind, $queue := .Values.config.kindQueues }}
{{- $entries = append $entries (printf "%s=%s" $kind $queue) }}
{{- end }}
{{- join "," $entries }}
{{- end }}

{{/* JSON {"pools": [{name, component, queues, lists, values, concurrencySet}]}:
`queues` as given (empty: every queue), `lists` the Redis lists of the queues
served, `values` worker's merged with the pool's. Use with fromJson. */}}
{{- define "conveyor.workerPools" -}}
{{- $every := include "conveyor.queues" . | fromJsonArray }}
{{- $given := .Values.workerPools | default (dict "all" dict) }}
{{- $pools := list }}
{{- range $name, $pool := $given }}
{{- $pool = $pool | default dict }}
{{- $values := mergeOverwrite (deepCopy $.Values.worker) (omit (deepCopy $pool) "queues") }}
{{- $queues := $pool.queues | default list }}
{{- $lists := list }}
{{- range ($queues | default $every) }}
{{- $lists = append $lists (printf "conveyor.jobs.%s" .) }}
{{- end }}
{{- $component := ternary "worker" (printf "worker-%s" $name) (eq $name "all") }}
{{- $pools = append $pools (dict "name" $name "component" $component "queues" $queues "lists" $lists "values" $values "concurrencySet" (hasKey $pool "concurrency")) }}
{{- end }}
{{- toJson (dict "pools" $pools) }}
{{- end }}

{{/* Every worker pod carries this label, whatever its pool: the workers'
metrics Service and network policy select on it. */}}
{{- define "conveyor.workerRoleLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
conveyor.io/process: worker
{{- end }}

{{/* Rules per pool; fails with one line naming the pool. */}}
{{- define "conveyor.validatePools" -}}
{{- $every := include "conveyor.queues" . | fromJsonArray }}
{{- $served := list }}
{{- range (include "conveyor.workerPools" . | fromJson).pools }}
{{- $v := .values }}
{{- $where := printf "workerPools.%s" .name }}
{{- range .queues }}
{{- if not (has . $every) }}
{{- fail (printf "%s.queues names %s, which no kind is routed to (queues: %s; see config.kindQueues)." $where . (join ", " $every)) }}
{{- end }}
{{- end }}
{{- $served = concat $served (.queues | default $every) }}
{{- if and $v.autoscaling.enabled $v.keda.enabled }}
{{- fail (printf "%s: autoscaling.enabled and keda.enabled are both true: a Deployment must have exactly one autoscaler (KEDA's ScaledObject creates its own HPA). Set one of them to false." $where) }}
{{- end }}
{{- if and $v.autoscaling.enabled (not (dig "requests" "cpu" "" $v.resources)) }}
{{- fail (printf "%s: autoscaling.enabled needs resources.requests.cpu: the HPA scales on CPU utilization, a percentage of the request." $where) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "%s: autoscaling.minReplicas (%v) is greater than maxReplicas (%v)." $where $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- if and $v.keda.enabled (gt (int $v.keda.minReplicaCount) (int $v.keda.maxReplicaCount)) }}
{{- fail (printf "%s: keda.minReplicaCount (%v) is greater than maxReplicaCount (%v)." $where $v.keda.minReplicaCount $v.keda.maxReplicaCount) }}
{{- end }}
{{- if not (gt (int $v.terminationGracePeriodSeconds) (int $v.shutdownGraceSeconds)) }}
{{- fail (printf "%s: terminationGracePeriodSeconds (%v) must be greater than shutdownGraceSeconds (%v), or running jobs are killed before they finish or are re-queued." $where $v.terminationGracePeriodSeconds $v.shutdownGraceSeconds) }}
{{- end }}
{{- end }}
{{- range $every }}
{{- if not (has . $served) }}
{{- fail (printf "workerPools: no pool serves the queue %s, so its jobs would wait forever. Add it to a pool's queues (a pool with no queues serves every queue)." .) }}
{{- end }}
{{- end }}
{{- end }}
