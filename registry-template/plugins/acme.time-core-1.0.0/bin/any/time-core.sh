#!/bin/sh
# Trellis example plugin: prints the time in UTC.
echo "time-core 1.0.0: $(date -u +%H:%M:%S) UTC"
