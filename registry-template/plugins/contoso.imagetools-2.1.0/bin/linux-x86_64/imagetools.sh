#!/bin/sh
# Trellis example plugin with per-platform binaries.
echo "imagetools 2.1.0 (linux-x86_64)"
