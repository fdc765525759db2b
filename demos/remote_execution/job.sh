#!/bin/sh
# Everything after the image name in `radops executors run EXECUTOR PATH COMMAND` arrives here
# as arguments ("$@"), exactly as with `docker run IMAGE ARGS...`.
echo "$@"
echo "host: $(hostname)"
if [ -e /dev/nvidia0 ] || command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu: visible"
else
  echo "gpu: none visible (run with --gpus all on a GPU executor)"
fi
