# shellcheck shell=sh
# Customises the test-host image inside mmdebstrap: sh image-hook.sh ROOTFS
# Part of the image version (hosts.sh hashes this file): any change here builds a new image.
set -eu
r=$1
rm -f "$r/etc/hostname"          # the name comes from systemd-nspawn --machine at boot
: > "$r/etc/machine-id"          # each machine makes its own at first boot
# as on an installed Debian: routers declare their placeholder servers as "localhost"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"

# The controller's user: unprivileged, passwordless sudo. Its key is not in the image:
# hosts.sh bind-mounts the harness's public key to /etc/ssh/authorized_keys/deploy.
chroot "$r" useradd --create-home --shell /bin/bash --uid 1000 deploy
echo 'deploy ALL=(ALL:ALL) NOPASSWD: ALL' > "$r/etc/sudoers.d/deploy"
chmod 0440 "$r/etc/sudoers.d/deploy"
install -d -m 0755 "$r/etc/ssh/authorized_keys"

# A host key per machine, made at its first boot (ed25519 only: fast).
rm -f "$r"/etc/ssh/ssh_host_*
cat > "$r/etc/ssh/sshd_config.d/10-test-host.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys/%u
CONF
cat > "$r/etc/systemd/system/test-host-key.service" <<'UNIT'
[Unit]
Description=Make this machine's SSH host key
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
[Install]
WantedBy=multi-user.target
UNIT

# A tiny HTTP backend for tests: test-web@PORT serves /srv/web/PORT on 127.0.0.1:PORT.
cat > "$r/etc/systemd/system/test-web@.service" <<'UNIT'
[Unit]
Description=Test HTTP backend on 127.0.0.1:%i
[Service]
ExecStart=/bin/busybox httpd -f -p 127.0.0.1:%i -h /srv/web/%i
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
install -d -m 0755 "$r/srv/web"

mkdir -p "$r/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' > "$r/etc/systemd/journald.conf.d/volatile.conf"
chroot "$r" systemctl enable test-host-key.service
# Debian's own haproxy and nginx stay off: the router role runs one process per app.
chroot "$r" systemctl disable haproxy.service nginx.service
chroot "$r" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  systemd-networkd-wait-online.service
rm -rf "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* "$r"/var/log/*.log
