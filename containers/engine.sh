#!/usr/bin/env bash
# Print the container engine to build and run with: the first of docker, podman whose daemon answers.
#
# A client whose daemon is not running does not count (machine images often ship a bare `docker`
# client). Where none answers and this runs as root on Debian, install Debian's Docker Engine,
# configure it for a VM without iptables or a bridge, start it and wait for it; anywhere else, say
# what to install. Messages go to stderr; stdout carries only the engine's name.
set -euo pipefail

DAEMON_LOG=${DOCKERD_LOG:-/var/log/optbench-dockerd.log}
WAIT_S=60

answers() { command -v "$1" >/dev/null 2>&1 && timeout 20 "$1" info >/dev/null 2>&1; }

for engine in ${ENGINE:-docker podman}; do
    if answers "$engine"; then
        echo "$engine"
        exit 0
    fi
done

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
    cat >&2 <<'EOF'
no container engine answers (a `docker` or `podman` whose daemon is running).
Install Docker Engine and start it (Debian/Ubuntu: sudo apt-get install docker.io && sudo systemctl start docker;
elsewhere: https://docs.docker.com/engine/install/), add yourself to the `docker` group, and run this again.
As root on Debian, `make images` installs and starts it itself.
EOF
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "no container engine answers: installing Debian's Docker Engine (docker.io)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# No iptables and no bridge in a VM that allows neither: containers use the host's network.
# rlimits above the current ones cannot be granted without CAP_SYS_RESOURCE, so containers get
# what this process has. An existing daemon.json is the machine owner's and is left alone.
if [ ! -f /etc/docker/daemon.json ]; then
    mkdir -p /etc/docker
    nofile=$(ulimit -n)
    cat >/etc/docker/daemon.json <<EOF
{"iptables": false, "bridge": "none", "storage-driver": "overlay2",
 "default-ulimits": {"nofile": {"Name": "nofile", "Soft": $nofile, "Hard": $nofile},
                     "nproc": {"Name": "nproc", "Soft": 20000, "Hard": 20000}}}
EOF
fi

echo "starting dockerd (log: $DAEMON_LOG)" >&2
nohup dockerd >"$DAEMON_LOG" 2>&1 &
for _ in $(seq "$WAIT_S"); do
    if answers docker; then
        echo docker
        exit 0
    fi
    sleep 1
done
echo "dockerd did not answer within ${WAIT_S}s; the end of $DAEMON_LOG:" >&2
tail -n 20 "$DAEMON_LOG" >&2
exit 1
