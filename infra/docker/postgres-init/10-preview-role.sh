#!/bin/sh
# Run once by the postgres image on a new data folder (files of /docker-entrypoint-initdb.d).
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -v db="${PREVIEW_DB:-lowcode_preview}" \
    -v role="${PREVIEW_ROLE:-lowcode_preview}" \
    -v password="${PREVIEW_PASSWORD:?set PREVIEW_PASSWORD}" \
    -f /docker-entrypoint-initdb.d/preview-role.psql
