"""CSUD programs behind scripts/: deraining and synthetic-rain data."""
