# Sourced by the Wine tests: `w PROGRAM ARGS...` runs one Windows program under Wine, its output
# in $LOG (never a pipe: wineserver and winedevice inherit it and keep it open).
#
# A run whose Wine client lost its connection to wineserver ("wine client error: ... recvmsg")
# never reached the program: it is Wine's own failure, seen on loaded CI machines, not the
# program's. Such a run is retried once, with a line saying so; any other failure is returned as
# it is. The programs run here (hale-wsfc actions) are idempotent, as OCF requires, so the retry
# cannot hide a half-done action: the second run meets whatever the first one left.
w() {
  local rc=0
  timeout 120 wine "$@" >"$LOG" 2>&1 </dev/null || rc=$?
  if [ "$rc" != 0 ] && grep -q "wine client error" "$LOG" 2>/dev/null; then
    echo "   (wine lost its wineserver connection running $(basename "$1") ${2:-}; running it once more)"
    rc=0
    timeout 120 wine "$@" >"$LOG" 2>&1 </dev/null || rc=$?
  fi
  return "$rc"
}
