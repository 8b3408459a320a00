"""Model interface shared by realtime model plugins."""
