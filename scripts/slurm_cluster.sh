#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the tests and to try imgclf's cluster
# commands: `bash scripts/slurm_cluster.sh start` installs SLURM and munge from Debian's
# packages if they are missing, writes a slurm.conf for this machine (its CPUs, one partition
# named debug), starts munged, slurmctld and slurmd, and waits until the node is idle.
# `bash scripts/slurm_cluster.sh stop` cancels every job and stops the daemons it started.
#
# Run it as root on a test machine or container: it writes /etc/slurm/slurm.conf, and
# refuses to replace one it did not write (a real cluster's).
set -euo pipefail

STATE_DIR="${IMGCLF_SLURM_DIR:-/tmp/imgclf-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by imgclf's scripts/slurm_cluster.sh"

fail() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

install_packages() {
  command -v slurmctld > /dev/null && command -v munged > /dev/null && return
  [ "$(id -u)" -eq 0 ] || fail "SLURM is not installed: run as root to install slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge > /dev/null
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    fail "$CONF exists and was not written by this script: this machine has a SLURM of its own"
  fi
  mkdir -p "$STATE_DIR"/{state,spool,log} /etc/slurm
  # slurmd -C: this machine as SLURM sees it (NodeName=<host> CPUs=... RealMemory=...).
  local node
  node=$(slurmd -C | head -n 1)
  cat > "$CONF" <<EOF
$MARK
ClusterName=imgclf
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it starts again (default 120): short here, so
# that the tests see a preempted job come back within seconds.
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
# Each task bound to its CPUs, as on real clusters: PyTorch sizes its thread pool to them. Unbound
# (task/none), two 1-CPU jobs each ran 2 threads on the 2 cores and took 10 times as long.
TaskPlugin=task/affinity
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
# Scheduling passes every few seconds (defaults: 60 and 30), so that a requeued job starts again
# as soon as it may.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
$node State=UNKNOWN
# OverSubscribe=FORCE: once every CPU is taken, jobs share them (as the test suite's processes
# do) instead of waiting for one another.
PartitionName=debug Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_munge() {
  munge -n > /dev/null 2>&1 && return
  mkdir -p /run/munge
  chown munge:munge /run/munge 2> /dev/null || true
  [ -f /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  munged --force
}

wait_for_idle() {
  for _ in $(seq 120); do
    [ "$(sinfo -h -o %t 2> /dev/null)" = "idle" ] && return
    sleep 0.5
  done
  fail "the node did not become idle; see $STATE_DIR/log/"
}

start() {
  install_packages
  write_config
  start_munge
  pgrep -x slurmctld > /dev/null || slurmctld
  pgrep -x slurmd > /dev/null || slurmd
  wait_for_idle
  sinfo
}

stop() {
  # Jobs first, while slurmctld is still there to end them; a job stuck in COMPLETING must not
  # keep the daemons alive, so the wait for them is bounded.
  scancel --user="$(id -un)" 2> /dev/null || true
  for _ in $(seq 60); do
    [ -z "$(squeue -h 2> /dev/null)" ] && break
    sleep 0.5
  done
  for daemon in slurmd slurmctld; do
    pkill -x "$daemon" 2> /dev/null || true
  done
  # Until they are gone: a start right after must not find them still shutting down.
  for _ in $(seq 60); do
    if ! pgrep -x slurmd > /dev/null && ! pgrep -x slurmctld > /dev/null; then
      pkill -KILL -x slurmstepd 2> /dev/null || true
      return 0
    fi
    sleep 0.5
  done
  pkill -KILL -x slurmd 2> /dev/null || true
  pkill -KILL -x slurmctld 2> /dev/null || true
  pkill -KILL -x slurmstepd 2> /dev/null || true
  echo "slurm_cluster.sh: the daemons did not stop within 30 s and were killed" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) fail "usage: bash scripts/slurm_cluster.sh start|stop" ;;
esac
