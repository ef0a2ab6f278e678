#!/usr/bin/env bash
# Write a build context for a tiny sample app image into <dir>:
#   FROM scratch + Debian's static busybox, `busybox httpd` on :8080 serving
#   /www/index.html (contains the version), /www/health, /www/version and a CGI dir.
# Builds with plain `docker build <dir>`; nothing is pulled (FROM scratch).
# Usage: scripts/sample_app.sh <dir> <version>
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 <dir> <version>" >&2; exit 2; }
DIR=$1 VERSION=$2
BUSYBOX=${BUSYBOX:-/bin/busybox}

[[ $VERSION =~ ^[A-Za-z0-9._+-]+$ ]] || { echo "version must match [A-Za-z0-9._+-]+" >&2; exit 2; }
[[ -x $BUSYBOX ]] || { echo "$BUSYBOX missing: apt-get install busybox-static" >&2; exit 1; }
# A scratch image has no libc: Debian's dynamic 'busybox' package ships the same
# path, so insist on the static build (ldd fails on static binaries).
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "$BUSYBOX is dynamically linked; install busybox-static instead of busybox" >&2
  exit 1
fi

mkdir -p "$DIR/bin" "$DIR/www/cgi-bin"
# cp only when changed, so rewriting the context keeps mtimes stable.
cmp -s "$BUSYBOX" "$DIR/bin/busybox" || install -m 0755 "$BUSYBOX" "$DIR/bin/busybox"
# /bin/sh for CGI scripts; COPY keeps the symlink, so no RUN step is needed.
ln -sfn busybox "$DIR/bin/sh"

cat >"$DIR/www/index.html" <<EOF
<!doctype html>
<html><head><title>sample-app $VERSION</title></head>
<body><h1>sample-app</h1><p>version: <span id="version">$VERSION</span></p></body></html>
EOF
echo ok >"$DIR/www/health"
echo "$VERSION" >"$DIR/www/version"

# Example CGI (busybox httpd runs executables under /www/cgi-bin/).
cat >"$DIR/www/cgi-bin/info" <<EOF
#!/bin/sh
printf 'Content-Type: application/json\r\n\r\n'
printf '{"app": "sample-app", "version": "%s", "hostname": "%s"}\n' "$VERSION" "\$(/bin/busybox hostname)"
EOF
chmod 0755 "$DIR/www/cgi-bin/info"

cat >"$DIR/Dockerfile" <<EOF
FROM scratch
LABEL org.opencontainers.image.title="sample-app" \\
      org.opencontainers.image.version="$VERSION"
COPY bin/ /bin/
COPY www/ /www/
EXPOSE 8080
# Unprivileged: port 8080 needs no root and the files are world-readable.
USER 65534:65534
# busybox httpd as PID 1 installs no SIGTERM handler, so the kernel would drop
# the stop signal and 'docker stop' would wait its full timeout; stopping a
# static file server abruptly loses nothing (draining is the router's job).
STOPSIGNAL SIGKILL
ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
EOF

echo "$DIR"
