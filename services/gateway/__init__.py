"""Gateway: the public entry: serves the page, passes /predict and /recommend on, and adds /analyze."""
