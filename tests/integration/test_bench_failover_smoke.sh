#!/usr/bin/env bash
# The smoke run of scripts/bench-failover (the long benchmark stays out of CI): --smoke, and its
# tables must carry a figure in every row. No timing thresholds. Needs root (the NAT lab).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
out=$ZTNA_TMP/bench.out
rc=0
t0=$(ztna_now_ms)
timeout "$(ztna_secs 180)" "$ZTNA_REPO/scripts/bench-failover" --smoke --build-dir "$ZTNA_BUILD_DIR" \
  >"$out" 2>"$ZTNA_TMP/logs/bench.err" || rc=$?
cat "$out" >&2
((rc == 0)) || ztna_fail "bench-failover --smoke failed (exit $rc): $(tail -n 40 "$ZTNA_TMP/logs/bench.err")"
ztna_log "bench-failover --smoke took $(($(ztna_now_ms) - t0)) ms"

num='[0-9]+(\.[0-9]+)?'
# row LABEL [COUNT]: COUNT (default 1) rows "LABEL  n  p50  p95  max", n at least 1.
row() {
  [[ $(grep -Ec -- "^$1 +[1-9][0-9]* +$num +$num +$num\$" "$out") == "${2:-1}" ]] ||
    ztna_fail "no figures in the row (or not ${2:-1} of them): $1"
}
row "re-home: SIGKILL -> the status shows another home"
row "  agent's log: home lost \(the death noticed\)"
row "  agent's log: registered with the new home"
row "session bound on the new relay \(agent's log\)"
row "conn1 registered with the restarted intermediate"
row "one intermediate \(connector, agent on i1\), relay only"
row "two \(connector on i1\+i2, agent given i2\), relay only"
row "  the same, the agent looking for direct paths" 2
# This build takes --etcd: the etcd part must have run.
! grep -q '^etcd: not supported by this build' "$out" || ztna_fail "bench-failover ran without etcd"
for variant in "agent given i1, i2, i3 \(it races them for a home\)" "agent given only i1"; do
  grep -Eq -- "^  $variant +-?$num\$" "$out" || ztna_fail "no etcd writes per registration: $variant"
done
ztna_pass
