#!/bin/sh
# Made once (2026-12) and committed: test runs never generate certificates.
# A throw-away CA (its key is not kept) signs a localhost certificate valid
# for 100 years; clients trust ca.pem.  Rerun only to replace them all.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -config ca.cnf -days 36500 -sha256 -set_serial 1 -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/leaf.key"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/leaf.key" -out key.pem
openssl req -new -key key.pem -config leaf.cnf -out "$tmp/leaf.csr"
openssl x509 -req -in "$tmp/leaf.csr" -CA ca.pem -CAkey "$tmp/ca.key" -set_serial 2 -days 36500 -sha256 \
    -extfile leaf.cnf -extensions v3_leaf -out cert.pem
openssl verify -CAfile ca.pem cert.pem
