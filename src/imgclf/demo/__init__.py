"""The demo page: a trained model tried in the browser (`python scripts/demo.py`)."""
