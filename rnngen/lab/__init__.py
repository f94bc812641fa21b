"""The lab: short, seeded, synthetic experiments that probe the limits of recurrence (`rnngen lab`)."""
