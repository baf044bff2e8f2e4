#!/usr/bin/env bash
# Build the Windows zip: target/wincross/hale-windows-<version>.zip with
#   hale-windows-<version>/hale-wsfc.exe                the adapter (release build, x86_64-pc-windows-gnu)
#   hale-windows-<version>/HaleCluster/HaleCluster.psd1 the PowerShell module (Import-Module .\HaleCluster)
#   hale-windows-<version>/HaleCluster/HaleCluster.psm1
#   hale-windows-<version>/README.md                    the adapter's README (modes, result table, event ids)
#   hale-windows-<version>/LICENSE
# Cross-builds with Debian's rustc-web and mingw as ocf-tests/windows/cross-test.sh does (which
# installs them); needs `zip`. Usage: packaging/windows/build-zip.sh   (from any directory)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"

for tool in /usr/bin/cargo x86_64-w64-mingw32-gcc x86_64-w64-mingw32-strip; do
  command -v "$tool" >/dev/null || { echo "build-zip: $tool is missing (run ocf-tests/windows/cross-test.sh once)"; exit 1; }
done
if ! command -v zip >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends zip </dev/null
fi

export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$REPO/target/wincross
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc

VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$VERSION" ] || { echo "build-zip: no workspace version in Cargo.toml"; exit 1; }
NAME=hale-windows-$VERSION
OUT=$CARGO_TARGET_DIR/$NAME.zip

/usr/bin/cargo build --release -p hale-wsfc -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu </dev/null

STAGE=$CARGO_TARGET_DIR/zip-stage
rm -rf "$STAGE"; mkdir -p "$STAGE/$NAME/HaleCluster"
cp "$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release/hale-wsfc.exe" "$STAGE/$NAME/"
# Debug symbols stay in the build tree; the shipped executable is stripped (6.9 MB -> 5.0 MB).
x86_64-w64-mingw32-strip "$STAGE/$NAME/hale-wsfc.exe"
cp "$HERE/HaleCluster/HaleCluster.psd1" "$HERE/HaleCluster/HaleCluster.psm1" "$STAGE/$NAME/HaleCluster/"
cp "$REPO/wsfc-adapter/README.md" "$STAGE/$NAME/README.md"
cp "$REPO/packaging/LICENSE" "$STAGE/$NAME/LICENSE"
rm -f "$OUT"
(cd "$STAGE" && zip -q -r -X "$OUT" "$NAME")
rm -rf "$STAGE"
echo "built $OUT ($(du -k "$OUT" | cut -f1) KiB)"
