#!/usr/bin/env bash
# Cross-build Hale crates for x86_64-pc-windows-gnu and run their tests under Wine (Debian 12, as root).
#
#   ocf-tests/windows/cross-test.sh [PACKAGE...]      # default: hale-ocf; works from any cwd
#
# When hale-wsfc is among the packages, two more steps follow the unit tests: the service test
# (hale-wsfc.exe installed as a Windows service under Wine's service manager, for a daemon
# resource supervising sleeper.exe: start, kill, restart, stop, uninstall), the script test (the
# generated Generic Script run by Windows Script Host), the app test (Generic Application mode:
# program killed, adapter terminated), the gitscript test (gitscript hosted by the adapter: a
# local master's programs in daemon and periodic mode) and the Windows zip
# (packaging/windows/build-zip.sh, its contents checked).
#
# Env:
#   HALE_WIN_MANIFEST=/path/Cargo.toml   build that manifest instead of the workspace (used to test
#                                        this script against a throwaway crate; pass its package names)
# Exit status: non-zero if install, build or any test fails. Cargo's "test result:" lines are printed.
# Build output, including the Wine prefix, goes to <repo>/target/wincross (kept apart from the
# normal rustup build).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
PKGS=("${@:-hale-ocf}")
T0=$SECONDS

# 1. Packages. Debian's rustc-web (1.96) + rust-web-src give -Zbuild-std a std source tree
#    (sysroot /usr); only the x86_64 win32-thread mingw gcc is needed (~300 MB vs 1.2 GB for mingw-w64).
DEBS=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64-win32 wine wine64 ca-certificates zip unzip)
missing=()
for p in "${DEBS[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo ">> installing: ${missing[*]}"
  # The caller is expected to have run apt-get update; do it once if the lists clearly lack rustc-web.
  apt-cache policy rustc-web 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    "${missing[@]}" </dev/null
fi
T_APT=$((SECONDS - T0))

# 2. Environment. rustup's ~/.cargo/bin comes first in PATH and its cargo/rustc are a different
#    version without a Windows std: call /usr/bin/cargo and pin every tool it may look up.
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1   # for -Zbuild-std on a stable compiler; never use #![feature] in the crates
export CARGO_TARGET_DIR=$REPO/target/wincross
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc   # crates with C parts (ring, for daemon's HTTPS)
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine   # cargo test runs each test .exe via wine
export WINEPREFIX=$CARGO_TARGET_DIR/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
LOGS=$CARGO_TARGET_DIR/logs
mkdir -p "$LOGS"           # wine refuses a prefix whose parent dir is missing ("chdir ... failed")
trap 'wineserver -k >/dev/null 2>&1 </dev/null || true' EXIT   # don't leave wineserver running

CARGO=(/usr/bin/cargo)
[ -n "${HALE_WIN_MANIFEST:-}" ] && MANIFEST=(--manifest-path "$HALE_WIN_MANIFEST") || MANIFEST=()
PFLAGS=(); for p in "${PKGS[@]}"; do PFLAGS+=(-p "$p"); done
# shellcheck disable=SC2054  # the comma belongs to the -Zbuild-std value
XFLAGS=(-Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu)

# 3. Cross-build (plain build first: a compile error shows up here, before any Wine start).
echo ">> cross-building ${PKGS[*]} for x86_64-pc-windows-gnu ($("$RUSTC" -V))"
"${CARGO[@]}" build "${MANIFEST[@]}" "${PFLAGS[@]}" "${XFLAGS[@]}" </dev/null
# The Windows-only code gets the same lint gate as the Linux build (Debian's clippy 1.96).
if [ -z "${HALE_WIN_MANIFEST:-}" ]; then
  echo ">> clippy for x86_64-pc-windows-gnu"
  "${CARGO[@]}" clippy "${PFLAGS[@]}" "${XFLAGS[@]}" --all-targets -- -D warnings </dev/null
fi
T_BUILD=$((SECONDS - T0))

# 4. Wine prefix, once (~6 s). NEVER pipe wine output: wineserver/winedevice inherit the pipe and keep
#    it open, so the reader hangs forever. Always redirect to a file and print it afterwards.
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  echo ">> creating Wine prefix $WINEPREFIX"
  wineboot -i >"$LOGS/wineboot.log" 2>&1 </dev/null || { cat "$LOGS/wineboot.log"; exit 1; }
  wineserver -w </dev/null >/dev/null 2>&1
fi
# Test-only ProcessPrng shim (see bcryptprimitives.c); rebuilt each run, it takes well under a second.
x86_64-w64-mingw32-gcc -O2 -s -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
  "$HERE/bcryptprimitives.c" "$HERE/bcryptprimitives.def" -ladvapi32

# 5. Tests under Wine. Output goes to a file (see above), then is printed. Doc-tests are skipped when
#    cross-compiling. --no-fail-fast so every package reports before we fail.
echo ">> cargo test ${PFLAGS[*]} under Wine $(dpkg-query -W -f='${Version}' wine)"
rc=0
timeout 1200 "${CARGO[@]}" test --no-fail-fast "${MANIFEST[@]}" "${PFLAGS[@]}" "${XFLAGS[@]}" \
  >"$LOGS/test.log" 2>&1 </dev/null || rc=$?
cat "$LOGS/test.log"

T_TEST=$SECONDS

# 6. The service test and the zip, when the adapter is part of this run.
if [[ " ${PKGS[*]} " == *" hale-wsfc "* ]] && [ -z "${HALE_WIN_MANIFEST:-}" ]; then
  bash "$HERE/service-test.sh" || rc=1
  bash "$HERE/script-test.sh" || rc=1
  bash "$HERE/app-test.sh" || rc=1
  bash "$HERE/gitscript-test.sh" || rc=1
  bash "$REPO/packaging/windows/build-zip.sh" >"$LOGS/zip.log" 2>&1 </dev/null || { cat "$LOGS/zip.log"; rc=1; }
  tail -n 3 "$LOGS/zip.log"
  bash "$HERE/check-zip.sh" || rc=1
fi

echo ">> times: apt ${T_APT}s, build $((T_BUILD - T_APT))s, test build+Wine run $((T_TEST - T_BUILD))s," \
     "service test + zip $((SECONDS - T_TEST))s, total $((SECONDS - T0))s; rc=$rc"
exit "$rc"
