#!/bin/sh
# Debian's Slurm and munge for tests/test_launch.py's single-node cluster, where they are missing and this user
# may install them (root, apt-get); otherwise nothing, and the Slurm test says why it skips. About 20-40 s once.
command -v slurmctld >/dev/null && command -v munged >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_slurm: not root or no apt-get: the Slurm test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >/tmp/install_slurm.log 2>&1 \
  || { echo "install_slurm: apt-get failed (tail of /tmp/install_slurm.log below): the Slurm test will skip" >&2;
       tail -5 /tmp/install_slurm.log >&2; }
exit 0
