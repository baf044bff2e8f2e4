#!/usr/bin/env bash
# Check the Windows zip built by packaging/windows/build-zip.sh: exactly the expected files, a
# PE executable that runs under Wine and prints the same result table as the README it ships
# with, and no test-only file (the bcryptprimitives shim must never ship).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/wincross}
export WINEPREFIX=${WINEPREFIX:-$CARGO_TARGET_DIR/wineprefix} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")
NAME=hale-windows-$VERSION
ZIP=$CARGO_TARGET_DIR/$NAME.zip
fail() { echo "zip check: FAILED: $*"; exit 1; }

[ -f "$ZIP" ] || fail "$ZIP is missing"
want="$NAME/
$NAME/HaleCluster/
$NAME/HaleCluster/HaleCluster.psd1
$NAME/HaleCluster/HaleCluster.psm1
$NAME/LICENSE
$NAME/README.md
$NAME/hale-wsfc.exe"
got=$(unzip -Z1 "$ZIP" | sort)
[ "$got" = "$want" ] || fail "unexpected contents:
$got"

X=$CARGO_TARGET_DIR/zip-check
rm -rf "$X"; mkdir -p "$X"; unzip -q "$ZIP" -d "$X"
[ "$(head -c 2 "$X/$NAME/hale-wsfc.exe")" = MZ ] || fail "hale-wsfc.exe is not a PE executable"
timeout 120 wine "$X/$NAME/hale-wsfc.exe" result-table >"$X/table.md" 2>"$X/wine.err" </dev/null || { cat "$X/wine.err"; fail "the zipped hale-wsfc.exe does not run"; }
sed -i 's/\r$//' "$X/table.md"
python3 - "$X/table.md" "$X/$NAME/README.md" <<'PY' || fail "the README's result table differs from the adapter's"
import sys
table, readme = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
sys.exit(0 if table in readme else 1)
PY
grep -q 'function New-HaleClusterResource' "$X/$NAME/HaleCluster/HaleCluster.psm1" || fail "module without New-HaleClusterResource"
echo "zip check: ok ($ZIP, $(du -k "$ZIP" | cut -f1) KiB)"
rm -rf "$X"
