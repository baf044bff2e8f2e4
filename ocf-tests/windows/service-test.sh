#!/usr/bin/env bash
# The Windows service test, under Wine: hale-wsfc.exe as the Windows service of a daemon
# resource supervising sleeper.exe.
#   1. configure + install; net start: the agent's start runs, the service is RUNNING, the
#      sleeper is alive (hale-wsfc monitor says 0);
#   2. the sleeper is killed: the service's monitor loop sees it, runs stop, and the service is
#      STOPPED with WIN32_EXIT_CODE 1066 and SERVICE_EXIT_CODE 7 (OCF not running);
#   3. net start again: RUNNING with a new sleeper;
#   4. net stop: the agent's stop runs (logged), the sleeper is gone, STOPPED with exit code 0;
#   5. uninstall + unconfigure: the service is gone.
# Run by cross-test.sh after the cross-build (it uses the exported Wine environment and the
# debug hale-wsfc.exe); runnable on its own after that. Exit status non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/wincross}
export WINEPREFIX=${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/hale-wsfc.exe
WORK=$CARGO_TARGET_DIR/service-test
LOG=$WORK/wine.log
NAME=wsfc-svc-test
SVC=hale-$NAME
HALE=$WINEPREFIX/drive_c/ProgramData/Hale
PIDFILE=$HALE/run/daemon-$NAME.pid
RESLOG=$HALE/logs/$NAME.log

[ -f "$EXE" ] || { echo "service test: $EXE is missing (run cross-test.sh with hale-wsfc)"; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
x86_64-w64-mingw32-gcc -O2 -s -o "$WORK/sleeper.exe" "$HERE/sleeper.c"

# Never pipe Wine's output (wineserver keeps the pipe open): to a file, then printed.
. "$HERE/wine.sh"   # w: one Windows program under Wine, output in $LOG
show() { sed 's/\r$//' "$LOG"; }
fail() {
  echo "service test: FAILED: $*"
  echo "--- last wine output"; show
  echo "--- resource log"; cat "$RESLOG" 2>/dev/null || true
  exit 1
}
state() { w sc query "$SVC" || true; sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p' "$LOG" | tr -d '\r'; }
field() { w sc query "$SVC" || true; sed -n "s/^ *$1 *: *\\([0-9]*\\).*/\\1/p" "$LOG" | tr -d '\r'; }
wait_state() {  # wait_state STATE: generous limit, no timing asserted
  for _ in $(seq 1 120); do [ "$(state)" = "$1" ] && return 0; sleep 0.5; done
  fail "$SVC did not reach $1 (last: $(state))"
}
sleeper_pid() { cut -d' ' -f1 "$PIDFILE" 2>/dev/null || true; }

# Wine stops services.exe a few seconds after the last ordinary Windows process exits: keep
# one alive for the whole test (its stdin is a pipe from sleep). It runs in a session of its
# own with every descriptor on files, so nothing of it holds the caller's output open, and the
# clean-up ends exactly that process group.
setsid bash -c 'sleep 600 | wine cmd' >"$WORK/keepalive.log" 2>&1 </dev/null &
KEEPALIVE=$!
cleanup() {
  w "$EXE" uninstall "$NAME" || true
  w "$EXE" unconfigure "$NAME" || true
  kill -- -"$KEEPALIVE" 2>/dev/null || true
}
trap cleanup EXIT

echo ">> service test: $SVC under Wine's service manager"
w "$EXE" uninstall "$NAME" || true
rm -f "$RESLOG" "$PIDFILE"
w "$EXE" configure "$NAME" --agent daemon -p "command='Z:$WORK/sleeper.exe'" --interval 1 --stop-timeout 10 \
  || fail "configure"
w "$EXE" install "$NAME" || fail "install"
grep -q "installed service $SVC" "$LOG" || fail "install said: $(show)"
[ "$(state)" = STOPPED ] || fail "a new service is not STOPPED"

# 1. start
w net start "$SVC" || true   # Wine's net may return before RUNNING; the state is what counts
wait_state RUNNING
grep -q "is online (daemon start)" "$RESLOG" || fail "RUNNING before the agent's start finished"
PID1=$(sleeper_pid); [ -n "$PID1" ] || fail "no pidfile after start"
w "$EXE" monitor "$NAME" || fail "monitor after start: exit $?"
echo "   started: RUNNING, sleeper pid $PID1, monitor 0"

# 2. the supervised process dies: STOPPED with the OCF code
w taskkill /F /PID "$PID1" || fail "taskkill"
wait_state STOPPED
[ "$(field WIN32_EXIT_CODE)" = 1066 ] || fail "WIN32_EXIT_CODE is not 1066 (service-specific)"
[ "$(field SERVICE_EXIT_CODE)" = 7 ] || fail "SERVICE_EXIT_CODE is not 7 (OCF not running)"
grep -q "monitor failed: 7" "$RESLOG" || fail "the monitor failure is not logged"
[ ! -e "$PIDFILE" ] || fail "stop did not run after the failure (pidfile left)"
echo "   sleeper killed: STOPPED, WIN32_EXIT_CODE 1066, SERVICE_EXIT_CODE 7, stop ran"

# 3. start again
w net start "$SVC" || true
wait_state RUNNING
PID2=$(sleeper_pid)
if [ -z "$PID2" ] || [ "$PID2" = "$PID1" ]; then fail "no new sleeper after the restart"; fi
w "$EXE" monitor "$NAME" || fail "monitor after restart"
echo "   restarted: RUNNING, sleeper pid $PID2"

# 4. stop: the agent's stop runs, the sleeper is gone
w net stop "$SVC" || true
wait_state STOPPED
[ "$(field WIN32_EXIT_CODE)" = 0 ] || fail "a requested stop must end with exit code 0"
grep -q "stopped on request" "$RESLOG" || fail "the agent's stop did not run on the SCM stop"
[ ! -e "$PIDFILE" ] || fail "pidfile left after stop"
if w "$EXE" monitor "$NAME"; then fail "monitor after stop says running"; fi
w taskkill /PID "$PID2" && fail "sleeper pid $PID2 still exists after stop"
echo "   stopped: STOPPED, exit 0, agent stop ran, sleeper gone"

# 5. uninstall
w "$EXE" uninstall "$NAME" || fail "uninstall"
if w sc query "$SVC"; then fail "$SVC still exists after uninstall"; fi
echo "service test: ok"
