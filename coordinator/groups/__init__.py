"""Consumer-group membership (KIP-848 style) and the pure assignors."""
