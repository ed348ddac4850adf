"""Runtime: devices and threads, child processes, Ray clean-up, the served (safe) mode."""
