#!/bin/sh
# Trellis example plugin: a clock.
echo "clock 1.0.0 ticking"
