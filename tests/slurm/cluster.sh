#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests, without systemd: munge, MariaDB, slurmdbd, slurmctld
# and slurmd from Debian 12 (Slurm 22.05), partitions `cpu` and `gpu`, two fake A100s as GRES.
#
#   tests/slurm/cluster.sh install   # apt-get install the daemons (once per machine)
#   tests/slurm/cluster.sh start     # write configs under $SLURM_TEST_ROOT, start every daemon, wait
#   tests/slurm/cluster.sh stop      # stop them by pid
#   tests/slurm/cluster.sh env       # the SLURM_CONF line to export for sbatch/squeue/sacct
#
# Everything lives under SLURM_TEST_ROOT (default /tmp/tf-lifecycle-slurm). The configs are linked
# from /etc/slurm, where every Slurm command looks: Snakemake's jobstep executor drops SLURM_CONF
# (with the other SLURM_* variables) before its srun, so a config found only through it is lost.
# An /etc/slurm/slurm.conf that is not such a link is never replaced.
set -euo pipefail

ROOT=${SLURM_TEST_ROOT:-/tmp/tf-lifecycle-slurm}
ACCOUNT=tflc
SITE_ACCOUNT=tflc_site
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
export SLURM_CONF=$ROOT/etc/slurm.conf

log() { echo "[slurm-cluster] $*" >&2; }

install() {
  local need=()
  for binary in slurmctld slurmd sbatch munged slurmdbd mariadbd; do
    command -v "$binary" >/dev/null || need+=("$binary")
  done
  if ((${#need[@]})); then
    log "installing Slurm, munge and MariaDB from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      slurmctld slurmd slurm-client munge slurmdbd mariadb-server >/dev/null
  fi
}

write_configs() {
  mkdir -p "$ROOT"/{etc,log,run,state,spool,gres,mysql,munge}
  # Slurm 22.05 drops GPUs whose gres.conf line has no File=, and refuses regular files there:
  # character devices that nothing opens (TaskPlugin=task/none does not constrain devices).
  for index in 0 1; do
    [ -e "$ROOT/gres/gpu$index" ] || mknod "$ROOT/gres/gpu$index" c 195 "$index"
  done
  cat >"$ROOT/etc/slurm.conf" <<CONF
ClusterName=tflc
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$ROOT/run/slurmctld.pid
SlurmdPidFile=$ROOT/run/slurmd.pid
SlurmctldPort=6917
SlurmdPort=6918
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6919
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
MinJobAge=600
DefMemPerCPU=1000
InactiveLimit=0
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:a100:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=gpu Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
CONF
  cat >"$ROOT/etc/gres.conf" <<CONF
NodeName=$HOST Name=gpu Type=a100 File=$ROOT/gres/gpu[0-1]
CONF
  cat >"$ROOT/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6919
SlurmUser=root
PidFile=$ROOT/run/slurmdbd.pid
LogFile=$ROOT/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3316
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$ROOT/etc/slurmdbd.conf"
  mkdir -p /etc/slurm
  for name in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "/etc/slurm/$name" ] && [ ! -L "/etc/slurm/$name" ]; then
      log "/etc/slurm/$name exists and is not ours: refusing to replace it (this machine has a real Slurm?)"
      exit 1
    fi
    ln -sfn "$ROOT/etc/$name" "/etc/slurm/$name"
  done
}

wait_for() {  # wait_for <seconds> <description> <command...>
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 4))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  log "timed out waiting for $what"
  tail -n 30 "$ROOT"/log/*.log >&2 2>/dev/null || true
  return 1
}

close_inherited_fds() {
  # Daemons started here outlive this script: they must not inherit its open files, e.g. the lock
  # of `flock /tmp/lock tests/slurm/cluster.sh start`, which they would hold until stopped.
  local fd
  for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)) && [ -e "/proc/$$/fd/$fd" ] && eval "exec $fd>&-" 2>/dev/null || true
  done
}

start() {
  install
  stop quiet
  close_inherited_fds
  write_configs
  log "starting munged"
  [ -s /etc/munge/munge.key ] || mungekey --create --force
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  munged --force --pid-file="$ROOT/run/munged.pid" --socket=/run/munge/munge.socket.2 \
    --log-file="$ROOT/log/munged.log" --seed-file="$ROOT/munge/seed"
  wait_for 10 munge munge -n

  log "starting MariaDB on 127.0.0.1:3316"
  if [ ! -d "$ROOT/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$ROOT/mysql" --auth-root-authentication-method=normal >/dev/null
  fi
  mariadbd --user=root --datadir="$ROOT/mysql" --socket="$ROOT/run/mysqld.sock" --port=3316 \
    --bind-address=127.0.0.1 --pid-file="$ROOT/run/mariadbd.pid" --log-error="$ROOT/log/mariadb.log" \
    --innodb-buffer-pool-size=64M &
  wait_for 60 MariaDB mariadb --socket="$ROOT/run/mysqld.sock" -uroot -e "select 1"
  mariadb --socket="$ROOT/run/mysqld.sock" -uroot -e \
    "create user if not exists 'slurm'@'127.0.0.1' identified by 'slurm';
     create user if not exists 'slurm'@'localhost' identified by 'slurm';
     grant all on slurm_acct_db.* to 'slurm'@'127.0.0.1'; grant all on slurm_acct_db.* to 'slurm'@'localhost';"

  log "starting slurmdbd"
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster tflc >/dev/null 2>&1 || true

  log "starting slurmctld and slurmd"
  slurmctld -f "$SLURM_CONF"
  wait_for 30 slurmctld scontrol ping
  sacctmgr -i add account "$ACCOUNT" Cluster=tflc Description=tests Organization=tests >/dev/null 2>&1 || true
  sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null 2>&1 || true
  # A second account, not the default: a job carries it only when the profile names it
  # (tests/test_slurm.py checks that a site profile's slurm_account reaches every job).
  sacctmgr -i add account "$SITE_ACCOUNT" Cluster=tflc Description=site Organization=tests >/dev/null 2>&1 || true
  sacctmgr -i add user root Account="$SITE_ACCOUNT" >/dev/null 2>&1 || true
  slurmd -f "$SLURM_CONF"
  wait_for 30 "an idle node" sh -c "sinfo -h -N -o %t | grep -qE '^(idle|mix)'"
  log "cluster up: $(sinfo -h -o '%P %a %D %t %G' | tr '\n' ';')"
}

stop() {
  for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    local pidfile="$ROOT/run/$daemon.pid"
    if [ -s "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      for _ in $(seq 40); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  [ "${1:-}" = quiet ] || log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
