#!/usr/bin/env bash
# The smoke run of scripts/bench-handshakes (the long benchmark stays out of CI): --quick, and
# its table must carry a figure in every row.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

ztna_setup
out=$ZTNA_TMP/bench.out
rc=0
timeout "$(ztna_secs 240)" "$ZTNA_REPO/scripts/bench-handshakes" --quick --build-dir "$ZTNA_BUILD_DIR" \
  >"$out" 2>"$ZTNA_TMP/logs/bench.err" || rc=$?
cat "$out" >&2
((rc == 0)) || ztna_fail "bench-handshakes --quick failed (exit $rc): $(tail -n 30 "$ZTNA_TMP/logs/bench.err")"
num='[0-9]+(\.[0-9]+)?'
for mode in never always; do
  grep -Eq -- "^--retry $mode +$num +$num +$num +$num +[0-9]+$" "$out" ||
    ztna_fail "no handshake rate row for --retry $mode"
done
grep -Eq "^memory per half-open handshake +-?$num KiB" "$out" || ztna_fail "no memory per half-open handshake"
grep -Eq "^memory per registered peer +-?$num KiB" "$out" || ztna_fail "no memory per registered peer"
ztna_pass
