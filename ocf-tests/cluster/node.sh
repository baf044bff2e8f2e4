#!/usr/bin/env bash
# One cluster node of the test harness, run as:
#   ip netns exec NETNS unshare --mount --uts --propagation private bash node.sh DIR NAME SBIN
# inside fresh network, mount and UTS namespaces. It gives the node its own /etc/corosync,
# /var/lib/pacemaker, /var/lib/corosync, /var/log/pacemaker, /run and /dev/shm (bind mounts
# of DIR/*), adds the suite's fence agent (SBIN/fence_hale_netns) to the node's /usr/sbin,
# where pacemaker-fenced and stonith_admin look for fence_* agents (an overlay: the host's
# /usr/sbin is not touched), then runs corosync and pacemakerd in the foreground with a clean environment (as
# systemd would: agents must not inherit this script's variables), and stays as the
# namespaces' anchor until killed. Everything it starts lives in NETNS, so the harness can
# find and kill exactly these processes.
set -eu
dir=$1 name=$2 sbin=$3
echo $$ > "$dir/anchor.pid"
hostname "$name"
mount --make-rprivate /
mount --bind "$dir/etc-corosync" /etc/corosync
mount --bind "$dir/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$dir/var-lib-corosync" /var/lib/corosync
mount --bind "$dir/log" /var/log/pacemaker
# A node's /run is a tmpfs: what an agent keeps there (pidfiles) dies with the node.
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/crm /run/lock /run/resource-agents
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t overlay hale-sbin -o "lowerdir=$sbin:/usr/sbin" /usr/sbin
ip link set lo up
cd /
clean=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
"${clean[@]}" corosync -f >>/var/log/pacemaker/corosync.out 2>&1 &
echo $! > "$dir/corosync.pid"
for _ in $(seq 300); do corosync-cfgtool -s >/dev/null 2>&1 && break; sleep 0.1; done
"${clean[@]}" PCMK_logfile=/var/log/pacemaker/pacemaker.log pacemakerd >>/var/log/pacemaker/pacemakerd.out 2>&1 &
echo $! > "$dir/pacemakerd.pid"
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $! || true; done
