#!/usr/bin/env bash
# demo.sh: starts the fake upstream and a gateway on loopback, then shows
# a request falling back from a failing provider, a replay, and a stream.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./gateway ./deploy/fakeupstream
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fport=$(port); gport=$(port)
cat > "$tmp/gateway.yaml" <<YAML
listen: 127.0.0.1:$gport
auth: {mode: keys, keys: [{tenant: demo, key: sk-demo}], admin_key: sk-admin}
store: {kind: embedded, path: $tmp/gw.db}
log: {format: text}
providers:
  flaky:  {base_url: http://127.0.0.1:$fport/v1, api_key: fake, timeout: 5s}
  backup: {base_url: http://127.0.0.1:$fport/v1, api_key: fake, timeout: 5s}
routes:
  - model: writer
    targets: [{provider: flaky, model: fail-503}, {provider: backup, model: fake-gpt}]
  - model: "*"
    targets: [{provider: backup}]
YAML
"$tmp/fakeupstream" -listen 127.0.0.1:$fport >/dev/null &
"$tmp/gateway" serve -config "$tmp/gateway.yaml" 2>"$tmp/gateway.log" &
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$gport/healthz" >/dev/null && break; sleep 0.1; done
req() { curl -s -D - "http://127.0.0.1:$gport/v1/chat/completions" -H 'Authorization: Bearer sk-demo' \
  -H 'Content-Type: application/json' "$@"; echo; }
echo "== 1. route 'writer': the first provider answers 503, the gateway falls back"
req -H 'Idempotency-Key: demo-1' -d '{"model":"writer","messages":[{"role":"user","content":"a title"}]}' |
  grep -iE '^(HTTP|x-gateway|idempotent)|"content"' || true
echo "== 2. the same key again: replayed, no upstream call"
req -H 'Idempotency-Key: demo-1' -d '{"model":"writer","messages":[{"role":"user","content":"a title"}]}' |
  grep -iE '^(HTTP|idempotent)' || true
echo "== 3. a stream, relayed chunk by chunk"
req -N -d '{"model":"fake-gpt","stream":true,"messages":[{"role":"user","content":"stream"}]}' | grep '^data' | head -4
echo "== 4. the attempt log of demo-1"
curl -s "http://127.0.0.1:$gport/admin/tasks/demo-1?tenant=demo" -H 'Authorization: Bearer sk-admin'; echo
echo "== gateway log"
cat "$tmp/gateway.log"
