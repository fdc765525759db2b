"""What every kind that runs jobs as Docker containers shares, pure: `docker` argv lists and
options, the job labels, log frames, prune and top decisions."""
