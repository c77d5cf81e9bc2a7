#!/usr/bin/env bash
# Stop the daemons slurm/ci/start.sh DIR started, by the process ids it recorded in DIR/pids.
dir=$1
[ -f "$dir/pids" ] || exit 0
while read -r pid; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
done < "$dir/pids"
for i in $(seq 1 20); do
    alive=0
    while read -r pid; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done < "$dir/pids"
    [ "$alive" = 0 ] && exit 0
    sleep 0.5
done
while read -r pid; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done < "$dir/pids"
