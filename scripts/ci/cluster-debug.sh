#!/usr/bin/env bash
# After a failed cluster or Tilt job: what a person needs to see why, in the log.
set -uo pipefail
kubectl get all,configmap,secret,networkpolicy,poddisruptionbudget,job -o wide
kubectl get events --sort-by=.lastTimestamp | tail -n 60
for pod in $(kubectl get pods -o name); do
  printf '\n----- %s\n' "$pod"
  kubectl describe "$pod" | tail -n 30
  kubectl logs "$pod" --all-containers --tail=100
done
helm list --all
