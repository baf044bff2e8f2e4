#!/usr/bin/env bash
# The Generic Application test, under Wine: `hale-wsfc.exe app <name>` for a daemon resource
# supervising sleeper.exe.
#   1. the sleeper is killed: the adapter's monitor sees it, runs stop, exits with code 7;
#   2. the adapter itself is terminated (as WSFC takes a Generic Application offline): the
#      sleeper dies with it (kill-on-close Job Object), monitor says 7;
#   3. the next `app` run cleans up the stale record first and starts again.
# Run by cross-test.sh after the cross-build; exit status non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/wincross}
export WINEPREFIX=${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/hale-wsfc.exe
WORK=$CARGO_TARGET_DIR/app-test
LOG=$WORK/wine.log
NAME=wsfc-app-test
HALE=$WINEPREFIX/drive_c/ProgramData/Hale
PIDFILE=$HALE/run/daemon-$NAME.pid
RESLOG=$HALE/logs/$NAME.log

[ -f "$EXE" ] || { echo "app test: $EXE is missing (run cross-test.sh with hale-wsfc)"; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
x86_64-w64-mingw32-gcc -O2 -s -o "$WORK/sleeper.exe" "$HERE/sleeper.c"

. "$HERE/wine.sh"   # w: one Windows program under Wine, output in $LOG
fail() {
  echo "app test: FAILED: $*"; echo "--- wine output"; sed 's/\r$//' "$LOG"
  echo "--- resource log"; cat "$RESLOG" 2>/dev/null || true
  exit 1
}
APP=
trap '[ -n "$APP" ] && kill "$APP" 2>/dev/null; w "$EXE" stop "$NAME" || true; w "$EXE" unconfigure "$NAME" || true' EXIT

# Start `hale-wsfc app` in the background and wait until the agent's start has finished; sets
# APP (the local wine process) and APP_WINPID (the adapter's Windows pid, from its log tag).
online_count() { local n=0; [ -f "$RESLOG" ] && n=$(grep -c "is online" "$RESLOG" || true); echo "${n:-0}"; }
start_app() {
  local before
  before=$(online_count)
  timeout 300 wine "$EXE" app "$NAME" >"$WORK/app.out" 2>&1 </dev/null &
  APP=$!
  for _ in $(seq 1 240); do
    [ "$(online_count)" -gt "$before" ] && break
    sleep 0.5
  done
  [ "$(online_count)" -gt "$before" ] || fail "app mode did not come online"
  APP_WINPID=$(grep "is online" "$RESLOG" | tail -n 1 | sed -n 's/^[^[]*\[\([0-9]*\)\].*/\1/p')
  [ -n "$APP_WINPID" ] || fail "no adapter pid in the log"
}
sleeper_pid() { cut -d' ' -f1 "$PIDFILE" 2>/dev/null || true; }

echo ">> app test: hale-wsfc app (Generic Application mode)"
w "$EXE" stop "$NAME" || true
rm -f "$RESLOG"
w "$EXE" configure "$NAME" --agent daemon -p "command='Z:$WORK/sleeper.exe'" --interval 1 --stop-timeout 10 \
  || fail "configure"

# 1. the supervised program dies: exit code 7 after stop
start_app
PID1=$(sleeper_pid); [ -n "$PID1" ] || fail "no pidfile after start"
w taskkill /F /PID "$PID1" || fail "taskkill sleeper"
rc=0; wait "$APP" || rc=$?; APP=
[ "$rc" = 7 ] || fail "app mode exited with $rc, not 7, after its program died"
[ ! -e "$PIDFILE" ] || fail "stop did not run after the failure"
echo "   program killed: the adapter ran stop and exited with code 7"

# 2. the adapter is terminated: its program goes with it
start_app
PID2=$(sleeper_pid); [ -n "$PID2" ] || fail "no pidfile after the second start"
w taskkill /F /PID "$APP_WINPID" || fail "taskkill adapter"
wait "$APP" || true; APP=
gone=
for _ in $(seq 1 120); do
  if ! w "$EXE" monitor "$NAME"; then gone=1; break; fi
  sleep 0.5
done
[ -n "$gone" ] || fail "the program outlived the terminated adapter"
w "$EXE" monitor "$NAME" && fail "monitor still says running"
grep -q "has exited" "$LOG" || fail "monitor does not say the program exited"
echo "   adapter terminated: the program died with it (kill-on-close job), monitor 7"

# 3. a new run cleans up the stale record and starts again
start_app
PID3=$(sleeper_pid)
if [ -z "$PID3" ] || [ "$PID3" = "$PID2" ]; then fail "no new program after the restart"; fi
w taskkill /F /PID "$APP_WINPID" || fail "taskkill adapter"
wait "$APP" || true; APP=
echo "   restarted after the stale record was cleaned up"
echo "app test: ok"
