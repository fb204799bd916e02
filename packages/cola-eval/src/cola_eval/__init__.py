"""cola_eval."""
