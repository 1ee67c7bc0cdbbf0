"""Running the hotline for real: the demo, the soak run, fault drills, config checks."""
