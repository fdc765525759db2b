"""The `slurm` kind: batch jobs on a Slurm cluster, submitted over SSH on its login node: the
login-node scripts, the batch script, the shared job folders."""
