"""The Textual chat app (`agent chat`)."""
