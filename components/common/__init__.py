"""Constants and helpers shared by every step."""
