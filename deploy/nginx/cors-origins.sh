# Sourced (POSIX sh) before nginx's templates are rendered, by the proxy's entrypoint in
# docker-compose.yml and by the integration tests' nginx: turns CORS_ORIGINS, Depot's own
# setting (origins separated by commas, or *), into DEPOT_CORS_ORIGIN_MAP, the body of
# depot.conf.template's map from a request's Origin to the Access-Control-Allow-Origin of the
# answers nginx gives itself. So one setting drives both, and an error from nginx (413, 503,
# 400) or a preflight while no replica answers carries the CORS headers Depot's would.
# Entries Depot would refuse at start (not scheme://host[:port]) are left out here.
depot_cors_default='""'
depot_cors_entries=''
while IFS= read -r depot_origin; do
    depot_origin=$(printf '%s' "$depot_origin" | tr -d ' \t\r')
    case "$depot_origin" in
        '') ;;
        '*') depot_cors_default='"*"' ;;
        http://* | https://*)
            case "$depot_origin" in
                *[!A-Za-z0-9.:/-]* | */*/*/*) echo "cors-origins.sh: ignoring CORS_ORIGINS entry $depot_origin" >&2 ;;
                *) depot_cors_entries="$depot_cors_entries \"$depot_origin\" \$http_origin;" ;;
            esac ;;
        *) echo "cors-origins.sh: ignoring CORS_ORIGINS entry $depot_origin" >&2 ;;
    esac
done <<DEPOT_CORS_ORIGINS
$(printf '%s' "${CORS_ORIGINS:-}" | tr ',' '\n')
DEPOT_CORS_ORIGINS
export DEPOT_CORS_ORIGIN_MAP="default $depot_cors_default;$depot_cors_entries"
unset depot_cors_default depot_cors_entries depot_origin
