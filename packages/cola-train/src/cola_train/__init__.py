"""cola_train."""
