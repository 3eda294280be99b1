#!/bin/sh
# Trellis example plugin: a clock.
echo "clock 1.1.0 ticking (synchronised)"
