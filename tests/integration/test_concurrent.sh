#!/usr/bin/env bash
# 100 concurrent downloads of 100 distinct 1 MiB files through one agent listener: every file must
# arrive intact (distinct contents catch streams crossed between connections), and afterwards the
# agent reports no stream left open.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

n=${ZTNA_CONCURRENT:-100}
size=$((1 << 20))

ztna_setup
ztna_make_certs
mkdir -p "$ZTNA_TMP/www/c" "$ZTNA_TMP/out"
ztna_random_file "$ZTNA_TMP/all.bin" $((n * size))
split -b "$size" -d -a 3 "$ZTNA_TMP/all.bin" "$ZTNA_TMP/www/c/f"
rm -f "$ZTNA_TMP/all.bin"
ztna_start_web_stack
agent_port=$ZTNA_WEB_PORT

max=$(ztna_secs 120)
declare -A curl_pid=()
t0=$(ztna_now_ms)
for ((i = 0; i < n; i++)); do
  f=$(printf 'f%03d' "$i")
  curl -fsS --max-time "$max" -o "$ZTNA_TMP/out/$f" "http://127.0.0.1:$agent_port/c/$f" \
    2>"$ZTNA_TMP/out/$f.err" &
  curl_pid[$f]=$!
done
failed=0
for f in "${!curl_pid[@]}"; do
  rc=0
  wait "${curl_pid[$f]}" || rc=$?
  if ((rc != 0)); then
    ztna_log "download $f: curl exit $rc: $(tr -d '\n' <"$ZTNA_TMP/out/$f.err")"
    failed=$((failed + 1))
  fi
done
t1=$(ztna_now_ms)
((failed == 0)) || ztna_fail "$failed of $n concurrent downloads failed"

bad=0
for ((i = 0; i < n; i++)); do
  f=$(printf 'f%03d' "$i")
  if ! cmp -s "$ZTNA_TMP/www/c/$f" "$ZTNA_TMP/out/$f"; then
    ztna_log "download $f: content differs (sha256 $(ztna_sha256 "$ZTNA_TMP/out/$f"), want $(ztna_sha256 "$ZTNA_TMP/www/c/$f"))"
    bad=$((bad + 1))
  fi
done
((bad == 0)) || ztna_fail "$bad of $n downloads arrived corrupted"
ztna_log "$n x 1 MiB downloaded concurrently and intact in $((t1 - t0)) ms"

ztna_wait_json agent1 15 "no open streams left" \
  '[.sessions[]?.open_streams] | add // 0 | . == 0'

ztna_pass
