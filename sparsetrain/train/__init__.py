"""Training: the step loop, the schedule of phases, run directories, progress display."""
