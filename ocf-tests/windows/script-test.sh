#!/usr/bin/env bash
# The Generic Script test, under Wine: the JScript that `hale-wsfc script` generates, run by
# Windows Script Host (cscript + jscript.dll) with a stand-in for the cluster's `Resource`
# object, drives a daemon resource supervising sleeper.exe through the adapter:
#   Online = 0 (the agent's start ran, monitor says 0), LooksAlive and IsAlive = true,
#   Offline = 0, then IsAlive = false (stop ran); Online of an unconfigured resource = 1.
# Run by cross-test.sh after the cross-build; exit status non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/wincross}
export WINEPREFIX=${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
EXE=$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/debug/hale-wsfc.exe
WORK=$CARGO_TARGET_DIR/script-test
LOG=$WORK/wine.log
NAME=wsfc-script-test
HALE=$WINEPREFIX/drive_c/ProgramData/Hale

[ -f "$EXE" ] || { echo "script test: $EXE is missing (run cross-test.sh with hale-wsfc)"; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"
x86_64-w64-mingw32-gcc -O2 -s -o "$WORK/sleeper.exe" "$HERE/sleeper.c"

. "$HERE/wine.sh"   # w: one Windows program under Wine, output in $LOG
fail() {
  echo "script test: FAILED: $*"; echo "--- wine output"; sed 's/\r$//' "$LOG"
  echo "--- resource log"; cat "$HALE/logs/$1.log" 2>/dev/null || true
  exit 1
}
trap 'w "$EXE" stop "$NAME" || true; w "$EXE" unconfigure "$NAME" || true' EXIT

# A harness: a stand-in Resource object, the generated script, and the calls WSFC would make.
harness() {  # harness RESOURCE OUT.js CALLS...
  local res=$1 out=$2; shift 2
  w "$EXE" script "$res" --output "Z:$WORK/$res.generated.js" || fail "$res" "hale-wsfc script"
  {
    echo 'var Resource = { LogInformation: function (s) { WScript.Echo("log: " + s); } };'
    sed 's/\r$//' "$WORK/$res.generated.js"
    for call in "$@"; do echo "WScript.Echo(\"$call=\" + $call());"; done
  } >"$out"
}

echo ">> script test: the generated Generic Script under Windows Script Host"
w "$EXE" stop "$NAME" || true
w "$EXE" configure "$NAME" --agent daemon -p "command='Z:$WORK/sleeper.exe'" --stop-timeout 10 \
  || fail "$NAME" "configure"

harness "$NAME" "$WORK/online.js" Open Online LooksAlive IsAlive
w cscript //nologo "Z:$WORK/online.js" || fail "$NAME" "cscript online.js"
for want in "Online=0" "LooksAlive=true" "IsAlive=true" "log: hale-wsfc start $NAME: exit code 0"; do
  grep -qxF "$want" <(sed 's/\r$//' "$LOG") || fail "$NAME" "expected '$want'"
done
w "$EXE" monitor "$NAME" || fail "$NAME" "monitor after Online: not running"
echo "   Online=0, LooksAlive=true, IsAlive=true; the sleeper runs"

harness "$NAME" "$WORK/offline.js" Offline IsAlive Close
w cscript //nologo "Z:$WORK/offline.js" || fail "$NAME" "cscript offline.js"
for want in "Offline=0" "IsAlive=false" "log: hale-wsfc monitor $NAME: exit code 7"; do
  grep -qxF "$want" <(sed 's/\r$//' "$LOG") || fail "$NAME" "expected '$want'"
done
[ ! -e "$HALE/run/daemon-$NAME.pid" ] || fail "$NAME" "pidfile left after Offline"
echo "   Offline=0, then IsAlive=false (monitor 7); stop ran"

harness unconfigured-x "$WORK/bad.js" Online
w cscript //nologo "Z:$WORK/bad.js" || fail unconfigured-x "cscript bad.js"
for want in "Online=1" "log: hale-wsfc start unconfigured-x: exit code 6"; do
  grep -qxF "$want" <(sed 's/\r$//' "$LOG") || fail unconfigured-x "expected '$want'"
done
echo "   an unconfigured resource: Online=1 (start exit code 6)"
echo "script test: ok"
