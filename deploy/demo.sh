#!/usr/bin/env bash
# demo.sh: starts the fake upstream and a gateway on loopback, then shows
# a request falling back from a failing provider, a replay, a stream, and a
# breaker: a provider that hangs is skipped in milliseconds once its breaker
# opens, and closed again by one probe when it is back; a stream cut
# mid-way that the client receives whole (on_stream_cut: continue); and an
# Anthropic Messages request falling back from a kind anthropic provider
# to an OpenAI-compatible one, translated both ways, and its replay.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill -CONT ${primary:-} 2>/dev/null; kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/" ./gateway ./deploy/fakeupstream
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fport=$(port); pport=$(port); gport=$(port)
cat > "$tmp/gateway.yaml" <<YAML
listen: 127.0.0.1:$gport
auth: {mode: keys, keys: [{tenant: demo, key: sk-demo}], admin_key: sk-admin}
store: {kind: embedded, path: $tmp/gw.db}
log: {format: text}
resilience: {breaker: {failures: 2, cooldown: 5s}}
providers:
  flaky:   {base_url: http://127.0.0.1:$fport/v1, api_key: fake, timeout: 5s}
  backup:  {base_url: http://127.0.0.1:$fport/v1, api_key: fake, timeout: 5s}
  primary: {base_url: http://127.0.0.1:$pport/v1, api_key: fake, timeout: 1s}
  claude:  {kind: anthropic, base_url: http://127.0.0.1:$fport, api_key: fake, timeout: 5s}
routes:
  - model: writer
    targets: [{provider: flaky, model: fail-503}, {provider: backup, model: fake-gpt}]
  - model: summarizer
    targets: [{provider: primary, model: fake-gpt}, {provider: backup, model: fake-gpt}]
  - model: storyteller
    on_stream_cut: continue
    targets: [{provider: flaky, model: story-cut}, {provider: backup, model: story-continue}]
  - model: claude-writer
    targets: [{provider: claude, model: fail-529}, {provider: backup, model: fake-gpt}]
  - model: "*"
    targets: [{provider: backup}]
YAML
"$tmp/fakeupstream" -listen 127.0.0.1:$fport >/dev/null &
"$tmp/fakeupstream" -listen 127.0.0.1:$pport >/dev/null &
primary=$!
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
sum() { curl -s -o /dev/null -w "%{http_code} from %header{x-gateway-provider} in %{time_total}s\n" \
  "http://127.0.0.1:$gport/v1/chat/completions" -H 'Authorization: Bearer sk-demo' \
  -H 'Content-Type: application/json' -H "Idempotency-Key: $1" \
  -d '{"model":"summarizer","messages":[{"role":"user","content":"'"$1"'"}]}'; }
upstreams() { curl -s "http://127.0.0.1:$gport/admin/upstreams" -H 'Authorization: Bearer sk-admin' |
  python3 -c 'import json,sys
for t in json.load(sys.stdin)["targets"]:
    if t["provider"] == "primary": print("   primary/%s: %s, %d consecutive failures, last %s, open until %s" % (t["model"], t["state"], t["consecutive_failures"], t.get("last_failure", "-"), t.get("open_until", "-")))'; }
echo "== 5. route 'summarizer': provider 'primary' hangs (its process is stopped); each request waits its 1s timeout, then falls back"
kill -STOP "$primary"
sum sum-1; sum sum-2
upstreams
echo "== 6. its breaker is open (failures: 2): the next requests skip it at once"
sum sum-3; sum sum-4
curl -s "http://127.0.0.1:$gport/admin/tasks/sum-3?tenant=demo" -H 'Authorization: Bearer sk-admin' |
  python3 -c 'import json,sys
for a in json.load(sys.stdin)["attempts"]: print("   attempt %d %s: %s %s" % (a["n"], a["provider"], a["outcome"], a["error"]))'
echo "== 7. 'primary' is back; after the 5s cooldown one request probes it and closes the breaker"
kill -CONT "$primary"
sleep 5.2
sum sum-5
upstreams
echo "== 8. route 'storyteller': its stream is cut after 5 of 12 chunks; the next target continues it (on_stream_cut: continue)"
curl -sN "http://127.0.0.1:$gport/v1/chat/completions" -H 'Authorization: Bearer sk-demo' -H 'Content-Type: application/json' \
  -H 'Idempotency-Key: story-1' -d '{"model":"storyteller","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a story"}]}' |
  python3 -c 'import json,sys
text, ids, done, errors, chunks = "", set(), 0, 0, 0
for line in sys.stdin:
    if not line.startswith("data: "): continue
    data = line[6:].strip()
    if data == "[DONE]": done += 1; continue
    c = json.loads(data)
    if "error" in c: errors += 1; continue
    chunks += 1; ids.add(c["id"])
    for ch in c["choices"]: text += ch["delta"].get("content") or ""
print("   %d chunks, chunk ids %s, %d [DONE], %d error events" % (chunks, sorted(ids), done, errors))
print("   the client assembled: %s" % text)'
curl -s "http://127.0.0.1:$gport/admin/tasks/story-1?tenant=demo" -H 'Authorization: Bearer sk-admin' |
  python3 -c 'import json,sys
for a in json.load(sys.stdin)["attempts"]: print("   attempt %d %s/%s: %s%s" % (a["n"], a["provider"], a["model"], a["outcome"], " (continues attempt %d)" % a["continues"] if a.get("continues") else ""))'
msg() { curl -s -D - "http://127.0.0.1:$gport/v1/messages" -H 'x-api-key: sk-demo' -H 'anthropic-version: 2023-06-01' \
  -H 'Content-Type: application/json' "$@"; echo; }
claude='{"model":"claude-writer","max_tokens":256,"messages":[{"role":"user","content":"a title"}]}'
echo "== 9. Anthropic's Messages API (x-api-key, as the Anthropic SDKs and Claude Code send it): route 'claude-writer'"
echo "   tries the kind anthropic provider first (overloaded: 529), then falls back to the OpenAI-compatible one;"
echo "   the request is translated to chat completions and the answer back to an Anthropic message"
msg -H 'Idempotency-Key: claude-1' -d "$claude" | grep -iE '^(HTTP|x-gateway|idempotent)|"type":"message"' || true
echo "== 10. the same key again: the Anthropic message replayed byte for byte, no upstream call"
msg -H 'Idempotency-Key: claude-1' -d "$claude" | grep -iE '^(HTTP|idempotent)|"type":"message"' || true
curl -s "http://127.0.0.1:$gport/admin/tasks/claude-1?tenant=demo" -H 'Authorization: Bearer sk-admin' |
  python3 -c 'import json,sys
for a in json.load(sys.stdin)["attempts"]: print("   attempt %d %s/%s: %s %s" % (a["n"], a["provider"], a["model"], a["outcome"], a.get("http_status") or ""))'
echo "== 11. streamed, the client gets Anthropic's event sequence from the OpenAI-compatible provider"
msg -N -d '{"model":"claude-writer","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"stream"}]}' | grep '^event' | uniq -c
echo "== gateway log"
cat "$tmp/gateway.log"
