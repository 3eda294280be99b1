@echo off
echo imagetools 2.1.0 (windows-x86_64)
