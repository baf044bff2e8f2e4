#!/usr/bin/env bash
# The gitscript test, under Wine: hale-wsfc.exe hosting ocf:hale:gitscript with a local-path
# master (created here with git, unsigned, verify=none) holding two Windows programs.
#   1. daemon mode, entry bin/sleeper.exe with no interpreter: start deploys the commit into a
#      read-only tree, writes the `current` pointer file and runs the program from the tree;
#      monitor 0; stop ends it; monitor 7;
#   2. periodic mode, entry bin/once.exe every second: the supervisor is
#      `hale-wsfc.exe gitscript-supervise`; its runs are recorded; stop ends it.
# Run by cross-test.sh after the cross-build; exit status non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/wincross}
export WINEPREFIX=${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/hale-wsfc.exe
WORK=$CARGO_TARGET_DIR/gitscript-test
LOG=$WORK/wine.log
HALE=$WINEPREFIX/drive_c/ProgramData/Hale
STATE='C:\ProgramData\Hale\gitscript-test'
STATE_UNIX=$HALE/gitscript-test

[ -f "$EXE" ] || { echo "gitscript test: $EXE is missing (run cross-test.sh with hale-wsfc)"; exit 1; }
command -v git >/dev/null || { echo "gitscript test: git is missing (ocf-tests/deps.sh installs it)"; exit 1; }
rm -rf "$WORK" "$STATE_UNIX"; mkdir -p "$WORK/src/bin"

. "$HERE/wine.sh"   # w: one Windows program under Wine, output in $LOG
fail() {
  echo "gitscript test: FAILED: $*"; echo "--- wine output"; sed 's/\r$//' "$LOG"
  for n in gs-daemon gs-periodic; do echo "--- log of $n"; cat "$HALE/logs/$n.log" 2>/dev/null || true; done
  exit 1
}
trap 'for n in gs-daemon gs-periodic; do w "$EXE" stop "$n" || true; w "$EXE" unconfigure "$n" || true; done' EXIT

# The master: two programs, committed with the host's git (no signature: verify=none).
x86_64-w64-mingw32-gcc -O2 -s -o "$WORK/src/bin/sleeper.exe" "$HERE/sleeper.c"
printf 'int main(void) { return 0; }\n' >"$WORK/once.c"
x86_64-w64-mingw32-gcc -O2 -s -o "$WORK/src/bin/once.exe" "$WORK/once.c"
git init -q --bare "$WORK/ops.git"
git -C "$WORK/src" init -q
git -C "$WORK/src" add bin
git -C "$WORK/src" -c user.name=Test -c user.email=test@example.com commit -q -m programs
git -C "$WORK/src" push -q "$WORK/ops.git" HEAD:refs/heads/master
COMMIT=$(git -C "$WORK/src" rev-parse HEAD)
MASTER="Z:$WORK/ops.git"

echo ">> gitscript test: hale-wsfc hosting gitscript (local master, verify=none)"
w "$EXE" configure gs-daemon --agent gitscript -p "repository=$MASTER" -p verify=none -p entry=bin/sleeper.exe \
  -p "state_dir=$STATE" --interval 1 --stop-timeout 10 || fail "configure gs-daemon"
w "$EXE" start gs-daemon || fail "start gs-daemon"
TREE=$STATE_UNIX/deploy/ops/$COMMIT
[ -f "$TREE/bin/sleeper.exe" ] || fail "no deployed tree $TREE"
# The read-only attribute is Wine's file mode without write bits.
[ "$(stat -c %a "$TREE/bin/sleeper.exe")" = 555 ] || fail "the deployed program is not read-only"
[ "$(tr -d '\r\n' <"$STATE_UNIX/deploy/ops/current")" = "$COMMIT" ] || fail "current does not name $COMMIT"
[ "$(tr -d '\r\n' <"$HALE/run/gitscript-gs-daemon.commit")" = "$COMMIT" ] || fail "no running commit recorded"
w "$EXE" monitor gs-daemon || fail "monitor after start"
w "$EXE" monitor gs-daemon --deep || fail "deep monitor after start (up to date with the master)"
w "$EXE" stop gs-daemon || fail "stop gs-daemon"
[ ! -e "$HALE/run/gitscript-gs-daemon.pid" ] || fail "pidfile left after stop"
rc=0; w "$EXE" monitor gs-daemon || rc=$?
[ "$rc" = 7 ] || fail "monitor after stop returned $rc, not 7"
echo "   daemon mode: commit ${COMMIT:0:12} deployed read-only, current written, sleeper.exe ran from the tree and stopped"

w "$EXE" configure gs-periodic --agent gitscript -p "repository=$MASTER" -p verify=none -p entry=bin/once.exe \
  -p mode=periodic -p period=1 -p "state_dir=$STATE" --interval 1 --stop-timeout 10 || fail "configure gs-periodic"
w "$EXE" start gs-periodic || fail "start gs-periodic"
RUNS=$HALE/run/gitscript-gs-periodic.runs/state
runs() { sed -n 's/^runs=\([0-9]*\).*/\1/p' "$RUNS" 2>/dev/null | tr -d '\r' || true; }
for _ in $(seq 1 120); do
  [ "$(runs)" -ge 2 ] 2>/dev/null && break
  sleep 0.5
done
[ "$(runs)" -ge 2 ] 2>/dev/null || fail "the supervisor recorded no two runs ($(cat "$RUNS" 2>/dev/null))"
grep -q "exit status 0" "$RUNS" || fail "the runs did not succeed: $(cat "$RUNS")"
w "$EXE" monitor gs-periodic || fail "monitor of periodic mode"
N=$(runs)
w "$EXE" stop gs-periodic || fail "stop gs-periodic"
rc=0; w "$EXE" monitor gs-periodic || rc=$?
[ "$rc" = 7 ] || fail "monitor after stop of periodic mode returned $rc, not 7"
echo "   periodic mode: hale-wsfc gitscript-supervise ran once.exe $N+ times, stop ended it"
echo "gitscript test: ok"
