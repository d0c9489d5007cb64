#!/bin/sh
# Writes fresh secrets for the prod overlay into DIR (default: this script's folder,
# k8s/overlays/prod/secrets/, which git ignores but for the committed files):
#
#   shop-secrets.env           shop-secrets.env.example with every <name> replaced by
#                              `openssl rand -hex 24`, the same value for the same name
#   identity-signing-keys.pem  a new P-256 signing key for identity (PKCS#8 PEM)
#
# Refuses to overwrite either file: real secrets are not replaced by accident. Nothing is
# printed but the files' names. scripts/check-k8s.sh runs it into a temporary copy of k8s/
# for throwaway values; it never reads the real ones.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here}
env_file=$dir/shop-secrets.env
key_file=$dir/identity-signing-keys.pem
command -v openssl >/dev/null || { echo "$0: openssl is needed" >&2; exit 1; }
for f in "$env_file" "$key_file"; do
    if [ -e "$f" ]; then
        echo "$0: $f exists: not overwriting it (remove it first to make new secrets)" >&2
        exit 1
    fi
done
umask 077
tmp=$env_file.tmp
cp "$here/shop-secrets.env.example" "$tmp"
for name in $(grep -v '^#' "$tmp" | grep -o '<[a-z0-9-]*>' | sort -u); do
    value=$(openssl rand -hex 24)
    sed "/^#/!s|$name|$value|g" "$tmp" >"$tmp.next"
    mv "$tmp.next" "$tmp"
done
if grep -v '^#' "$tmp" | grep -q '<[a-z0-9-]*>'; then
    echo "$0: a <name> was left in $tmp" >&2
    exit 1
fi
mv "$tmp" "$env_file"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key_file" 2>/dev/null
echo "wrote $env_file and $key_file"
