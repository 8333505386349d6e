#!/usr/bin/env bash
# The cluster job of .github/workflows/ci.yml, on a kind cluster that already
# exists (helm/kind-action): the documented demo install (docs/deploy/helm.md),
# then what this machine's tests cannot do without a cluster:
#   build both images and `kind load` them; kubectl apply -f deploy/dev/;
#   helm install with values-demo.yaml; helm test;
#   a burst of jobs while the workers are scaled with kubectl: every one succeeds;
#   helm upgrade to a new image tag with jobs in flight: none is lost;
#   helm uninstall: nothing of the release is left.
# Needs docker, kind, and helm and kubectl on PATH (make install puts them in .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${KIND_CLUSTER_NAME:-conveyor}
RELEASE=conveyor
# What docs/deploy/helm.md documents (tests/deploy/test_github_workflow.py checks it).
TARGETS=(api worker)
CHART=deploy/helm/conveyor
VALUES=deploy/helm/conveyor/values-demo.yaml
PYTHON=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
forward_pid=""

step() { printf '\n==> %s\n' "$*"; }
cleanup() {
  if [[ -n $forward_pid ]]; then kill "$forward_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

build_and_load() {
  local tag=$1 images=()
  for target in "${TARGETS[@]}"; do
    docker build --target "$target" --build-arg VERSION="$tag" -t "conveyor-$target:$tag" .
    images+=("conveyor-$target:$tag")
  done
  kind load docker-image --name "$CLUSTER" "${images[@]}"
}

# The API through a port-forward; restarted whenever it drops (pods replaced).
port_forward() {
  if [[ -n $forward_pid ]]; then kill "$forward_pid" 2>/dev/null || true; fi
  kubectl port-forward "svc/$RELEASE-api" 8000:80 >"$work/port-forward.log" 2>&1 &
  forward_pid=$!
  for _ in $(seq 30); do
    if "$PYTHON" -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/readyz", timeout=2)' 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  echo "FAIL: the API did not answer through the port-forward" >&2
  cat "$work/port-forward.log" >&2
  return 1
}

step "images: Dockerfile targets api and worker, tag ci-1, loaded into kind"
build_and_load ci-1

step "kubectl apply -f deploy/dev/ (demo Postgres and Redis)"
kubectl apply -f deploy/dev/
kubectl rollout status deploy/conveyor-postgres --timeout=180s
kubectl rollout status deploy/conveyor-redis --timeout=180s

step "helm install with the demo values"
helm install "$RELEASE" "$CHART" -f "$VALUES" --set image.tag=ci-1 --wait --timeout 5m

step "helm test"
helm test "$RELEASE" --logs --timeout 5m

step "a burst of jobs while the workers scale from 1 to 3"
CONVEYOR_API_KEY=$(kubectl exec "deploy/$RELEASE-api" -c api -- \
  python scripts/create_api_key.py --tenant ci-burst | tail -n 1)
export CONVEYOR_API_KEY CONVEYOR_URL=http://127.0.0.1:8000
port_forward
"$PYTHON" scripts/ci/jobs.py submit --count 60 --kind hash --ids "$work/burst.txt"
kubectl scale "deploy/$RELEASE-worker" --replicas=3
kubectl rollout status "deploy/$RELEASE-worker" --timeout=180s
"$PYTHON" scripts/ci/jobs.py wait --ids "$work/burst.txt" --timeout 300

step "helm upgrade to image tag ci-2 with jobs in flight"
build_and_load ci-2
"$PYTHON" scripts/ci/jobs.py submit --count 30 --kind sleep --ids "$work/in-flight.txt"
helm upgrade "$RELEASE" "$CHART" -f "$VALUES" --set image.tag=ci-2 --wait --timeout 5m
for component in api worker scheduler; do
  image=$(kubectl get "deploy/$RELEASE-$component" -o jsonpath='{.spec.template.spec.containers[0].image}')
  [[ $image == *:ci-2 ]] || { echo "FAIL: $component still runs $image" >&2; exit 1; }
done
port_forward
"$PYTHON" scripts/ci/jobs.py wait --ids "$work/in-flight.txt" --timeout 300
"$PYTHON" scripts/ci/jobs.py wait --ids "$work/burst.txt" --timeout 60

step "helm uninstall leaves nothing of the release behind"
kill "$forward_pid" 2>/dev/null || true
forward_pid=""
helm uninstall "$RELEASE" --wait --timeout 5m
left=$(kubectl get all,configmap,secret,serviceaccount,networkpolicy,poddisruptionbudget,job,ingress \
  -l "app.kubernetes.io/instance=$RELEASE" -o name)
if [[ -n $left ]]; then
  echo "FAIL: left behind after helm uninstall:" >&2
  echo "$left" >&2
  exit 1
fi
kubectl delete -f deploy/dev/ --wait
echo "cluster e2e: passed"
