"""Model manifest, installer and start-up verification of every model file."""
