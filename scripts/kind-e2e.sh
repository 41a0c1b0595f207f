#!/usr/bin/env bash
# The smoke experiment on a local kind cluster, with MinIO as the store.
#
# Needs: docker, kind, kubectl, and xtrc installed here (pip install -e '.[s3]').
# NOT RUN on xtrc's development machines: they have no Docker engine and cannot pull images.
#
#   scripts/kind-e2e.sh            # create (or reuse) the cluster, build, deploy, run, report
#   CLUSTER=other NS=exp scripts/kind-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-xtrc}
NS=${NS:-xtrc}
IMAGE=${IMAGE:-xtrc-runtime:dev-cpu}
BUCKET=${BUCKET:-xtrc}
PORT=${PORT:-19000}

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER"
fi
kubectl config use-context "kind-$CLUSTER"

docker build --build-arg VARIANT=cpu -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -

# Fresh random credentials, only ever in Secrets and this shell's environment.
ACCESS_KEY=xtrc
SECRET_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
kubectl -n "$NS" create secret generic minio-root --dry-run=client -o yaml \
  --from-literal=MINIO_ROOT_USER="$ACCESS_KEY" --from-literal=MINIO_ROOT_PASSWORD="$SECRET_KEY" | kubectl apply -f -
kubectl -n "$NS" create secret generic xtrc-store-credentials --dry-run=client -o yaml \
  --from-literal=AWS_ACCESS_KEY_ID="$ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
  --from-literal=AWS_ENDPOINT_URL="http://minio.$NS.svc.cluster.local:9000" | kubectl apply -f -
kubectl -n "$NS" apply -f charts/kind/minio.yaml
kubectl -n "$NS" rollout restart deploy/minio   # pick up the new root credentials
kubectl -n "$NS" rollout status deploy/minio --timeout=180s

# This machine reaches MinIO through a port-forward; the pods through the Service.
kubectl -n "$NS" port-forward svc/minio "$PORT:9000" >/dev/null 2>&1 &
FORWARD=$!
trap 'kill $FORWARD 2>/dev/null || true' EXIT
sleep 3
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
python - "$BUCKET" <<'PY'
import sys, s3fs
fs = s3fs.S3FileSystem()
if not fs.exists(sys.argv[1]):
    fs.mkdir(sys.argv[1])
PY

# The smoke spec, stored in MinIO, in this namespace, credentials by Secret reference.
SPEC=$(mktemp --suffix=.yaml)
python - "$SPEC" "$BUCKET" "$NS" <<'PY'
import sys, yaml
spec = yaml.safe_load(open("specs/smoke.yaml"))
spec["storage"] = {"uri": f"s3://{sys.argv[2]}/smoke", "secret": "xtrc-store-credentials"}
spec["compute"]["namespace"] = sys.argv[3]
yaml.safe_dump(spec, open(sys.argv[1], "w"), sort_keys=False)
PY

xtrc apply "$SPEC" --watch --image "$IMAGE" --context "kind-$CLUSTER"
xtrc report "$SPEC"
