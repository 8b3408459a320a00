"""realtalk."""
