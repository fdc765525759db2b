"""Google Cloud: GPU VMs created from instance templates, registered as GCP executors (an SSH
executor with the VM's own rules: pinned host key, autostop activity, "why it is down").

google-cloud-compute takes about a second to import, so only the `gcp` commands load it.
"""
