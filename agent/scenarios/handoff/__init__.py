"""Handoff: a person takes a conversation over; the inbox, the events the customer sees, labels that teach."""
