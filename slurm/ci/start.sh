#!/usr/bin/env bash
# Start a one-node SLURM cluster (munged, slurmctld, slurmd) for the cluster-path test, from slurm.conf.in.
#   slurm/ci/start.sh DIR     writes DIR/slurm.conf, starts the daemons, records their process ids in DIR/pids
# Then export SLURM_CONF=DIR/slurm.conf for sbatch, squeue and the test; slurm/ci/stop.sh DIR stops them.
# Exits 2 with one line when SLURM or munge is not installed or the cluster does not answer.
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
for cmd in munged slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null || { echo "start.sh: $cmd not found (Debian: apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 2; }
done
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
: > "$dir/pids"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
sed -e "s|@HOST@|$host|g" -e "s|@USER@|$(id -un)|g" -e "s|@DIR@|$dir|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM@|$mem|g" \
    -e "s|@CTLD_PORT@|${ADAE_SLURMCTLD_PORT:-16817}|g" -e "s|@SLURMD_PORT@|${ADAE_SLURMD_PORT:-16818}|g" \
    "$here/slurm.conf.in" > "$dir/slurm.conf"
export SLURM_CONF="$dir/slurm.conf"
# munge: its own socket and key in DIR, so a machine's own munged (if any) is left alone
socket="$dir/munge/munge.socket"
if [ -r /etc/munge/munge.key ]; then cp /etc/munge/munge.key "$dir/munge/munge.key"
else dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 2>/dev/null; fi
chmod 600 "$dir/munge/munge.key"
munged --force --socket="$socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
cat "$dir/munge/munged.pid" >> "$dir/pids"
# slurm's auth/munge plugin finds the socket through AuthInfo
sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$socket|" "$dir/slurm.conf"
slurmctld -f "$dir/slurm.conf"
slurmd -f "$dir/slurm.conf"
for i in $(seq 1 60); do
    if [ -s "$dir/slurmctld.pid" ] && [ -s "$dir/slurmd.pid" ] && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        cat "$dir/slurmctld.pid" "$dir/slurmd.pid" >> "$dir/pids"
        echo "start.sh: one-node cluster up ($host, $cpus CPUs); SLURM_CONF=$dir/slurm.conf"
        exit 0
    fi
    sleep 1
done
cat "$dir/slurmctld.pid" "$dir/slurmd.pid" >> "$dir/pids" 2>/dev/null || true
echo "start.sh: the cluster did not answer within 60 s (logs in $dir)" >&2
exit 2
