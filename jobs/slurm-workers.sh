#!/bin/bash
# Run many xpdb workers against one PostgreSQL with a Slurm array (one worker per task).
# 1. On a login node create the job without local workers:
#      xpdb infer --job jobs/infer-giants.toml --no-wait        # prints "job N"
# 2. Submit this array; every task leases batches of any pending job (or pass --job N):
#      sbatch --array=1-32 jobs/slurm-workers.sh
# 3. Follow it: xpdb jobs show N      (retry failures: xpdb jobs retry N; sbatch again)
#SBATCH --job-name=xpdb-worker
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=xpdb-worker-%A_%a.log
set -euo pipefail
# The database must be reachable from the compute nodes, e.g.
#   export XPDB_DATABASE_URL=postgresql://xpdb:PASSWORD@dbhost:5432/xpdb
: "${XPDB_DATABASE_URL:?set XPDB_DATABASE_URL to the shared PostgreSQL}"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export TF_NUM_INTRAOP_THREADS=${SLURM_CPUS_PER_TASK:-1} TF_NUM_INTEROP_THREADS=1
# A GPU node is used automatically when TensorFlow sees one (install tensorflow[and-cuda]).
srun xpdb jobs work ${XPDB_JOB:+--job "$XPDB_JOB"}
