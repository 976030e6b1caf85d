#!/usr/bin/env bash
# The sep2-server suite against GridAPPS-D's IEEE 2030.5 server (PyPI gridappsd-2030-5
# 0.0.2a37, BSD-3), a second public 2030.5 server (conformance/README.md, "2030.5 server
# checks"). Usage: conformance/sep2-server/gridappsd.sh [WORK_DIR]; exit status: the suite's.
#
# Its pinned gevent 21.12 does not build on Python 3.11 (Cython 3), and the server never
# imports it, so the server is installed --no-deps with the dependencies it does import.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-${TMPDIR:-/tmp}/gridappsd-2030-5}
port=${PORT:-18443}
gateway=${GATEWAY:-$repo/.venv/bin/gateway}
mkdir -p "$work"
if [ ! -x "$work/venv/bin/2030_5_server" ]; then
    "${PYTHON:-python3}" -m venv "$work/venv"
    "$work/venv/bin/pip" install -q --no-deps gridappsd-2030-5==0.0.2a37
    "$work/venv/bin/pip" install -q "Flask>=2.0.3,<3" "Werkzeug<3" "blinker>=1.5,<2" \
        "click>=8.1.3,<9" "cryptography>=37.0.2,<38" "dataclasses-json>=0.5.7,<0.6" \
        "flask-session>=0.5,<0.6" "flask-talisman>=1,<2" "pickleDB>=0.9.2,<0.10" \
        "pyOpenSSL>=22,<23" "pyyaml>=6.0.1,<7" "simplekv>=0.14.1,<0.15" "tzlocal>=4.2,<5" \
        "xsdata[lxml]>=22.5,<23" "gridappsd-field-bus==2024.8.1a1" attrs
fi
sed -e "s|@WORK@|$work|g" -e "s|@PORT@|$port|g" "$here/gridappsd-config.yml" >"$work/config.yml"
cp "$here/gridappsd-openssl.cnf" "$work/openssl.cnf"
rm -rf "$work/tls" "$work/data_store"
(cd "$work" && exec "$work/venv/bin/2030_5_server" config.yml --create-certs) >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    grep -q "Running on https://" "$work/server.log" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; exit 2; }
    sleep 0.5
done
grep -q "Running on https://" "$work/server.log" || { echo "no server in 60 s" >&2; exit 2; }
status=0
"$gateway" conformance run --suite sep2-server --target "https://127.0.0.1:$port/dcap" \
    --cert "$work/tls/certs/dev1.crt" --key "$work/tls/private/dev1.pem" \
    --ca "$work/tls/certs/ca.crt" --report "$work/report" || status=$?
echo "server log: $work/server.log; report: $work/report"
exit "$status"
