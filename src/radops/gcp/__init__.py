"""Google Cloud: GPU VMs created from instance templates and registered as SSH executors.

google-cloud-compute takes about a second to import, so only the `gcp` commands load it.
"""
