"""The lecture, measured: gradient norms through time and training curves."""
