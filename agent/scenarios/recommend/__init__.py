"""Recommendations: items retrieved by description, user profiles from feedback, a learned interest
model, and the conversation around them ("more like that", "not that one")."""
