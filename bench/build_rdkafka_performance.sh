#!/usr/bin/env bash
# Builds librdkafka's examples/rdkafka_performance (not packaged by Debian) from Debian's
# source package of the installed librdkafka, against the installed librdkafka-dev.
#   bench/build_rdkafka_performance.sh [OUT_DIR]   (default ~/.cache/flashsale-bench)
# Prints the path of the binary. Needs root for apt-get (adds a deb-src list file for
# bookworm while it runs, and removes it again).
set -euo pipefail
OUT="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/flashsale-bench}"
BIN="$OUT/rdkafka_performance"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$OUT"
SRC_LIST=/etc/apt/sources.list.d/flashsale-bench-deb-src.sources
cleanup() { rm -f "$SRC_LIST"; }
trap cleanup EXIT
if [[ ! -d "$OUT/src" ]]; then
    cat >"$SRC_LIST" <<'L'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
L
    apt-get update -qq -o Dir::Etc::sourcelist="$SRC_LIST" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 >&2
    mkdir -p "$OUT/src"
    (cd "$OUT/src" && apt-get source -qq --download-only librdkafka >&2 \
        && dpkg-source -x --no-check ./*.dsc rdk >&2)
fi
D="$(ls -d "$OUT"/src/rdk)"
# rdkafka_performance.c includes, besides the public rdkafka.h, the internal header-only
# helpers src/rd.h and src/rdtime.h, and rd.h needs the config.h that librdkafka's own
# ./configure (mklove, ~3 s, no downloads) writes. Linked against the installed library.
[[ -f "$D/config.h" ]] || (cd "$D" && ./configure --disable-ssl --disable-gssapi --disable-zstd \
    --disable-lz4-ext --disable-curl >&2)
cc -O2 -o "$BIN" "$D/examples/rdkafka_performance.c" -I/usr/include/librdkafka -I"$D/src" \
    -lrdkafka -lpthread -lm >&2
echo "$BIN"
