#!/usr/bin/env bash
# A real multi-node SLURM cluster on this one machine, for tests and demos.
#
#   slurm/local-cluster.sh start            munged + slurmctld here, one slurmd per node
#                                           (default 3 nodes); waits until all are idle
#   slurm/local-cluster.sh status           whether it runs, and sinfo
#   slurm/local-cluster.sh stop             stop everything and remove every trace
#   slurm/local-cluster.sh env              the environment to use it (eval "$(... env)")
#   slurm/local-cluster.sh kill-node NODE   crash a node: SIGKILL every process on it
#                                           (slurmd, slurmstepd, job processes)
#   slurm/local-cluster.sh start-node NODE  boot a crashed node again and resume it
#
# Needs root, iproute2, util-linux (nsenter, unshare) and Debian's slurm-wlm + munge
# (`make setup` installs them when run as root; this script installs them with apt-get if
# they are missing and it can).
#
# Layout. slurmctld and one munged run on this machine ("the head node"). Every compute
# node NODE (hpcn1, hpcn2, ... ; LOCAL_SLURM_NODES, default 3) is one slurmd in
#   - its own network namespace (`ip netns add NODE`), linked by a veth pair to a private
#     bridge on the head node (hpcbr0). Addresses come from LOCAL_SLURM_SUBNET (default
#     10.213.0, a private range used only inside these namespaces): the head node is .1,
#     node i is .(10+i). There is no route and no forwarding out of the bridge, so nothing
#     the nodes send can leave this machine;
#   - its own UTS namespace (hostname NODE) and mount namespace, where a private
#     /etc/hosts (the cluster's "DNS") is bind-mounted so that the nodes resolve each
#     other's names (torch.distributed/gloo needs that); the machine's /etc/hosts is
#     never touched.
# All nodes share this machine's filesystem, which plays the cluster's shared filesystem,
# and one MUNGE key and socket (`AuthInfo=socket=...`: a path socket works across network
# namespaces). slurmd is started with `nsenter --net=... unshare --uts --mount`, not
# `ip netns exec`: the latter remounts /sys and leaves /sys/fs/cgroup empty, and slurmd
# 22.05 then refuses to start.
#
# Everything lives in one directory, $LOCAL_SLURM_DIR (default /tmp/hpc-local-slurm):
# slurm.conf, the MUNGE key and socket, state, per-node spool/pid/log files (`%n`). The
# daemons and the printed environment use SLURM_CONF. One link outside that directory:
# /etc/slurm/slurm.conf -> our slurm.conf, created only when that file does not exist and
# removed again by stop: Snakemake's SLURM job step strips every SLURM_* variable
# (SLURM_CONF included) before its inner `srun`, which then only finds the default path,
# as on a real cluster. A real /etc/slurm/slurm.conf is never replaced (start warns).
# stop removes the daemons, every process left in the node namespaces, the namespaces,
# veths and bridge, /run/netns when it was ours, the link and the directory. start and
# stop are idempotent.
#
# Configuration choices, for a container without systemd or cgroup delegation:
#   MpiDefault=none, SLURM's own default and that of many real clusters: a plain
#     `srun -n 4 python ...` then starts four independent 1-rank programs. The suite must
#     pass the plugin itself (the profile's `mpi` resource: `srun --mpi=pmi2`);
#   ProctrackType=proctrack/linuxproc, TaskPlugin=task/none (no cgroups needed);
#   SelectType=select/cons_tres with CR_CPU_Memory (CPUs and memory are consumable);
#   every node claims LOCAL_SLURM_NODE_CPUS CPUs (default 2) and 90 % of this machine's
#     memory (SlurmdParameters=config_overrides): the nodes share one machine, so CPUs
#     and memory are overcommitted N times;
#   AccountingStorageType=accounting_storage/none: no slurmdbd, so `sacct` does not work
#     and Snakemake's executor uses squeue; MinJobAge=600 keeps finished jobs visible;
#   SlurmdTimeout=6: a crashed node is marked DOWN ~15 s later and its batch jobs are
#     requeued (JobRequeue=1, SLURM's default); ReturnToService=2 lets a node that boots
#     again rejoin by itself.
set -euo pipefail

DIR="${LOCAL_SLURM_DIR:-/tmp/hpc-local-slurm}"
CONF="$DIR/slurm.conf"
SYSTEM_CONF="${LOCAL_SLURM_SYSTEM_CONF:-/etc/slurm/slurm.conf}"
PARTITION="${LOCAL_SLURM_PARTITION:-debug}"
NNODES="${LOCAL_SLURM_NODES:-3}"
NODE_CPUS="${LOCAL_SLURM_NODE_CPUS:-2}"
PREFIX="${LOCAL_SLURM_NODE_PREFIX:-hpcn}"
SUBNET="${LOCAL_SLURM_SUBNET:-10.213.0}"
BRIDGE="${LOCAL_SLURM_BRIDGE:-hpcbr0}"
HEAD_IP="$SUBNET.1"

die() { echo "local-cluster: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces and starts munged, slurmctld, slurmd)"
}

ensure_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "slurmctld/slurmd/munged missing and no apt-get to install slurm-wlm munge"
  echo "local-cluster: installing slurm-wlm munge with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The node names, from the running configuration when there is one (stop and status must
# find what start created even when LOCAL_SLURM_NODES differs now).
nodes() {
  if [ -f "$DIR/nodes" ]; then cat "$DIR/nodes"; return; fi
  local i
  for i in $(seq "$NNODES"); do echo "$PREFIX$i"; done
}

node_ip() {  # node name -> address (its index in the node list + 10)
  local i=0 n
  for n in $(nodes); do i=$((i + 1)); [ "$n" = "$1" ] && { echo "$SUBNET.$((10 + i))"; return; }; done
  die "no node named '$1' (nodes: $(nodes | tr '\n' ' '))"
}

print_env() {
  echo "export SLURM_CONF=$CONF"
}

write_config() {
  local host mem n nodelist
  host="$(hostname -s)"
  mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$(slurmd -C | head -n 1)")"
  mem=$(( mem * 9 / 10 ))
  nodelist="$(nodes | paste -sd, -)"
  cat >"$CONF" <<EOF
# Generated by slurm/local-cluster.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ): a $(nodes | wc -l)-node test
# cluster on one machine (nodes in network namespaces, see the script's header).
ClusterName=hpclocal
SlurmctldHost=$host($HEAD_IP)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldPort=${LOCAL_SLURM_CTLD_PORT:-6817}
SlurmdPort=${LOCAL_SLURM_D_PORT:-6818}
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=6
MessageTimeout=5
TCPTimeout=2
InactiveLimit=0
KillWait=5
EOF
  for n in $(nodes); do
    echo "NodeName=$n NodeAddr=$(node_ip "$n") NodeHostname=$n CPUs=$NODE_CPUS RealMemory=$mem State=UNKNOWN" >>"$CONF"
  done
  echo "PartitionName=$PARTITION Nodes=$nodelist Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO" >>"$CONF"
  {
    echo "127.0.0.1 localhost"
    echo "$HEAD_IP $host"
    for n in $(nodes); do echo "$(node_ip "$n") $n"; done
  } >"$DIR/hosts"
}

start_munge() {
  mkdir -p "$DIR/munge"
  chmod 700 "$DIR/munge"
  if [ ! -f "$DIR/munge/munge.key" ]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
    else
      dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$DIR/munge/munge.key"
  fi
  if pid_alive "$DIR/munge/munged.pid"; then return 0; fi
  munged --force \
    --socket="$DIR/munge/munge.socket" \
    --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
  for _ in $(seq 50); do [ -S "$DIR/munge/munge.socket" ] && return 0; sleep 0.1; done
  die "munged did not create its socket; see $DIR/log/munged.log"
}

setup_network() {
  local n i=0
  [ -d /run/netns ] || touch "$DIR/netns-ours"   # /run/netns is created by our first `ip netns add`
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HEAD_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  for n in $(nodes); do
    i=$((i + 1))
    [ -e "/run/netns/$n" ] && continue
    ip netns add "$n"
    ip link add "hv-$n" type veth peer name eth0 netns "$n"
    ip link set "hv-$n" master "$BRIDGE" up
    ip -n "$n" addr add "$SUBNET.$((10 + i))/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
  done
}

start_node() {
  local n="$1"
  mkdir -p "$DIR/spool/slurmd-$n"
  pid_alive "$DIR/run/slurmd-$n.pid" && return 0
  # slurmd daemonises; its processes (slurmstepd, the jobs) inherit the node's namespaces.
  SLURM_CONF="$CONF" nsenter --net="/run/netns/$n" unshare --uts --mount sh -c \
    "mount --bind '$DIR/hosts' /etc/hosts && hostname '$n' && exec slurmd -N '$n'"
}

node_states() { SLURM_CONF="$CONF" sinfo -h -N -o '%N %t' 2>/dev/null || true; }

wait_idle() {  # until every node is idle (or mix/alloc)
  local want states ok
  want="$(nodes | wc -l)"
  for _ in $(seq 120); do
    states="$(node_states)"
    ok="$(awk '$2 ~ /^(idle|mix|alloc)$/' <<<"$states" | wc -l)"
    [ "$ok" -ge "$want" ] && return 0
    while read -r n st; do
      case "$st" in down*|drain*|drng*|fail*)
        SLURM_CONF="$CONF" scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true ;;
      esac
    done <<<"$states"
    sleep 0.5
  done
  echo "local-cluster: nodes not idle after 60 s:" >&2
  echo "$states" >&2
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

link_system_conf() {
  if [ -L "$SYSTEM_CONF" ] || [ ! -e "$SYSTEM_CONF" ]; then
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -sfn "$CONF" "$SYSTEM_CONF"
  else
    echo "local-cluster: warning: $SYSTEM_CONF is a real file, left alone; jobs started by" \
         "Snakemake's SLURM executor will read it instead of $CONF" >&2
  fi
}

unlink_system_conf() {
  if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
    rm -f "$SYSTEM_CONF"
  fi
}

running() {
  local n
  pid_alive "$DIR/run/slurmctld.pid" || return 1
  for n in $(nodes); do pid_alive "$DIR/run/slurmd-$n.pid" || return 1; done
}

start() {
  need_root
  ensure_packages
  command -v nsenter >/dev/null && command -v unshare >/dev/null && command -v ip >/dev/null \
    || die "needs ip (iproute2), nsenter and unshare (util-linux)"
  if [ -f "$CONF" ] && running; then
    wait_idle
    echo "local-cluster: already running (SLURM_CONF=$CONF)" >&2
    print_env
    return 0
  fi
  mkdir -p "$DIR"/{state,spool,log,run}
  chmod 755 "$DIR"
  nodes >"$DIR/nodes.new" && mv "$DIR/nodes.new" "$DIR/nodes"
  write_config
  link_system_conf
  start_munge
  setup_network
  export SLURM_CONF="$CONF"
  pid_alive "$DIR/run/slurmctld.pid" || slurmctld -i
  local pids=() n
  for n in $(nodes); do start_node "$n" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || { stop; die "a slurmd did not start; logs in $DIR/log"; }; done
  wait_idle || { stop; die "the nodes did not become idle"; }
  echo "local-cluster: running: partition '$PARTITION', nodes $(nodes | paste -sd, -) on $HEAD_IP/24; use:" >&2
  print_env
}

netns_pids() {  # every process whose network namespace is node $1's
  local ino pid
  [ -e "/run/netns/$1" ] || return 0
  ino="$(stat -L -c %i "/run/netns/$1")"
  for pid in /proc/[0-9]*; do
    pid="${pid#/proc/}"
    [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "net:[$ino]" ] && echo "$pid"
  done
  return 0
}

kill_node() {
  need_root
  local n="$1" pids
  node_ip "$n" >/dev/null
  pids="$(netns_pids "$n")"
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  rm -f "$DIR/run/slurmd-$n.pid"
  echo "local-cluster: node $n crashed (killed: $(echo $pids | wc -w) processes)" >&2
}

restart_node() {
  need_root
  node_ip "$1" >/dev/null
  start_node "$1"
  SLURM_CONF="$CONF" scontrol update nodename="$1" state=resume >/dev/null 2>&1 || true
  wait_idle
}

kill_pidfile() {  # SIGTERM, up to 10 s, then SIGKILL
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop() {
  need_root
  [ -d "$DIR" ] || { echo "local-cluster: not running" >&2; return 0; }
  local n pids
  if [ -f "$CONF" ] && pid_alive "$DIR/run/slurmctld.pid"; then
    # Cancel what is still queued or running so that no job step outlives the cluster.
    SLURM_CONF="$CONF" scancel --full --quiet --partition="$PARTITION" 2>/dev/null || true
  fi
  for n in $(nodes); do kill_pidfile "$DIR/run/slurmd-$n.pid" & done
  kill_pidfile "$DIR/run/slurmctld.pid" &
  wait
  # Whatever is left on the nodes (job steps that ignored the cancel) dies with them.
  for n in $(nodes); do
    pids="$(netns_pids "$n")"
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  done
  # slurmstepd processes on the head node naming our configuration (none normally).
  for pid in $(pgrep -f "slurmstepd" 2>/dev/null || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  kill_pidfile "$DIR/munge/munged.pid"
  for n in $(nodes); do
    ip link del "hv-$n" 2>/dev/null || true
    [ -e "/run/netns/$n" ] && { ip netns del "$n" 2>/dev/null || true; }
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$DIR/netns-ours" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    while mountpoint -q /run/netns; do umount /run/netns || break; done
    rmdir /run/netns 2>/dev/null || true
  fi
  unlink_system_conf
  rm -rf "$DIR"
  echo "local-cluster: stopped" >&2
}

status() {
  if [ -f "$CONF" ] && running && pid_alive "$DIR/munge/munged.pid"; then
    echo "local-cluster: running (SLURM_CONF=$CONF)"
    SLURM_CONF="$CONF" sinfo -N -l
    return 0
  fi
  if [ -d "$DIR" ]; then
    echo "local-cluster: partly running (some daemons are down; see sinfo):"
    SLURM_CONF="$CONF" sinfo -N 2>/dev/null || true
    return 4
  fi
  echo "local-cluster: not running"
  return 3
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  kill-node) [ -n "${2:-}" ] || die "usage: $0 kill-node NODE"; kill_node "$2" ;;
  start-node) [ -n "${2:-}" ] || die "usage: $0 start-node NODE"; restart_node "$2" ;;
  *) echo "usage: $0 start|stop|status|env|kill-node NODE|start-node NODE" >&2; exit 2 ;;
esac
