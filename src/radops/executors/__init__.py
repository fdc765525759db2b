"""Executors: the contract every kind keeps (`base`), what kinds and callers exchange
(`model`), what a kind offers (`features`), and the kinds themselves (`local`, `ssh`, `slurm`;
the GCP kind lives with its provisioner in radops.gcp). radops.api finds a kind by name."""
